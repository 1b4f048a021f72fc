"""Staff tools under test work on a copy of knowledge/ and a temporary database."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def staff_env(knowledge_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """KEPU_KNOWLEDGE_DIR -> a writable copy of knowledge/; KEPU_DB_URL -> a fresh SQLite file."""
    monkeypatch.setenv("KEPU_KNOWLEDGE_DIR", str(knowledge_copy))
    monkeypatch.setenv("KEPU_DB_URL", f"sqlite:///{tmp_path / 'staff.db'}")
    monkeypatch.delenv("KEPU_DATA_DIR", raising=False)
    return knowledge_copy

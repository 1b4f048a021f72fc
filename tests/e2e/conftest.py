"""The end-to-end tests talk to the checkout's bot, started once per session on free ports
(tests/conftest.py: checkout_bot, shared with the browser tests)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def live_url(checkout_bot: str) -> str:
    """The checkout's bot, started for this session (never a server already running)."""
    return checkout_bot

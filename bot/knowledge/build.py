"""`python -m bot.knowledge.build`: validate knowledge/ and load it into the database."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from bot.dialogue.lexicon import LexiconError, parse_lexicon, parse_replies, read_yaml
from bot.knowledge.loader import KnowledgeError, load_knowledge
from bot.knowledge.store import ROOT, build_database, database_url


def check_dialogue_words(directory: Path, fact_ids: Iterable[str]) -> None:
    """cues.yml and replies.yml compile, and name only facts and placeholders that exist."""
    parse_lexicon(read_yaml(directory / "cues.yml"), "cues.yml", fact_ids)
    parse_replies(read_yaml(directory / "replies.yml"), "replies.yml")


def main(argv: list[str] | None = None) -> int:
    """Build the knowledge database; exit 1 with a clear message on bad data."""
    parser = argparse.ArgumentParser(description="构建知识库 / build the knowledge database")
    parser.add_argument("--knowledge", default=str(ROOT / "knowledge"), help="knowledge folder")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: KEPU_DB_URL or build/knowledge.db)")
    args = parser.parse_args(argv)
    try:
        kb = load_knowledge(Path(args.knowledge))
        check_dialogue_words(Path(args.knowledge), kb.facts)
    except (KnowledgeError, LexiconError) as exc:
        print(f"知识库校验失败，数据库保持不变：{exc}", file=sys.stderr)
        return 1
    digest = build_database(kb, args.db)
    print(f"知识库已构建：{len(kb.facts)} 条事实，{sum(len(v) for v in kb.entities.values())} 个实体取值，"
          f"{len(kb.faqs)} 条常见问题 -> {args.db or database_url()} ({digest[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

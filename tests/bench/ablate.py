"""What each dialogue mechanism adds: a conversation set played in process with one mechanism off.

    python -m tests.bench.ablate --url http://127.0.0.1:5105 [--set dev]

The NLU readings come from a running server's /model/parse (the API token in build/api_token),
so every variant sees the same classifier output; the dialogue runs in this process with the
mechanism switched off: pinyin (speller and pinyin retrieval terms), retrieval, grounding,
several (questions of one message answered one by one).
A measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import bot.dialogue.resolvers as resolvers
import bot.dialogue.retrieval as retrieval
from bot import evaluation
from bot.dialogue import Turn, respond
from bot.faq import selected_faq
from bot.knowledge.loader import load_knowledge
from bot.text import normalize

understanding = sys.modules["bot.dialogue.understand"]
TODAY = dt.date(2026, 12, 2)


def _parser_for(url: str) -> Any:
    token = (evaluation.ROOT / "build" / "api_token").read_text().strip()
    cache: dict[str, dict[str, Any]] = {}

    def parse(text: str) -> dict[str, Any]:
        if text not in cache:
            request = urllib.request.Request(f"{url}/model/parse?token={token}", json.dumps({"text": text}).encode(),
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as resp:
                cache[text] = json.loads(resp.read())
        return cache[text]
    return parse


def _turn(parsed: dict[str, Any], text: str, context: dict[str, Any], faqs: set[str]) -> Turn:
    faq_id, faq_confidence = selected_faq(parsed)
    intent = parsed.get("intent") or {}
    return Turn(intent=intent.get("name") or "", text=normalize(text), confidence=float(intent.get("confidence") or 0),
                ranking=[(r["name"], r["confidence"]) for r in parsed.get("intent_ranking") or []], context=context,
                faq=(faq_id, faq_confidence) if faq_id else None, known_faqs=faqs)


def play(conversations: list[evaluation.Conversation], parse: Any) -> dict[str, str]:
    """Answered / refused / follow-up rates of the set, played in process."""
    kb = load_knowledge(evaluation.ROOT / "knowledge")
    facts = evaluation.key_facts_of(evaluation.ROOT / "knowledge")
    counts = {"answered": [0, 0], "oos_refused": [0, 0], "followup": [0, 0]}
    for conv in conversations:
        context: dict[str, Any] = {}
        all_ok = True
        for turn in conv.turns:
            reply = respond(kb, _turn(parse(turn.user), turn.user, context, {f.id for f in kb.faqs}), TODAY)
            context = reply.context
            ok = evaluation.judge(turn, evaluation.Reply(200, reply.text, (reply.kind,)), facts).ok
            key = "oos_refused" if turn.expect == "refusal" else "answered" if turn.expect != "smalltalk" else ""
            if key:
                counts[key][0] += ok
                counts[key][1] += 1
            all_ok &= ok
        if conv.is_followup:
            counts["followup"][0] += all_ok
            counts["followup"][1] += 1
    return {k: f"{v[0] / max(v[1], 1):.1%}" for k, v in counts.items()}


@contextlib.contextmanager
def switched_off(name: str) -> Iterator[None]:
    """One mechanism off for the duration."""
    saved = []
    if name == "pinyin":
        chunk = retrieval._chunk_terms
        saved = [(understanding.Speller, "correct", understanding.Speller.correct), (retrieval, "_chunk_terms", chunk)]
        understanding.Speller.correct = lambda self, text: text
        retrieval._chunk_terms = lambda c: [g for g in chunk(c) if not g.startswith("p:")]
    elif name == "retrieval":
        saved = [(resolvers, "_search", resolvers._search)]
        resolvers._search = lambda frame, among="": []
    elif name == "several":
        import bot.dialogue as dialogue

        saved = [(dialogue, "question_parts", dialogue.question_parts)]
        dialogue.question_parts = lambda text, lex, kb: []
    elif name == "grounding":
        saved = [(understanding, "tagged_foreign_words", understanding.tagged_foreign_words)]
        understanding.tagged_foreign_words = lambda text, known, lex, pos=None: []
    retrieval._index.cache_clear()
    try:
        yield
    finally:
        for owner, attr, value in saved:
            setattr(owner, attr, value)
        retrieval._index.cache_clear()


def main(argv: list[str] | None = None) -> int:
    """Print the figures with every mechanism, then with each one off."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5005")
    parser.add_argument("--set", default="dev")
    parser.add_argument("--only", default="", help="comma-separated mechanisms to switch off")
    args = parser.parse_args(argv)
    conversations = evaluation.load_set(args.set)
    parse = _parser_for(args.url)
    print("all mechanisms     ", play(conversations, parse))
    parser_names = args.only.split(",") if args.only else ("pinyin", "retrieval", "grounding", "several")
    for name in parser_names:
        with switched_off(name):
            print(f"without {name:<11}", play(conversations, parse))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The held-out conversation suite, run against a live server over REST.

    python -m tests.e2e.eval [--url http://localhost:5005] [--start] [--min-accuracy 0.97] [--min-oos 0.95]

Reads tests/conversations/*.yml (written apart from the training data, never
trained on), sends every turn of every conversation in its own session, and
checks each reply for the facts it must and must not contain. Prints answer
accuracy, out-of-scope rejection and follow-up success; writes the failures
to results/eval.json; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bot.staff.live import is_ready

ROOT = Path(__file__).resolve().parents[2]
CONVERSATIONS = ROOT / "tests" / "conversations"


@dataclass
class TurnResult:
    """One checked turn."""

    conversation: str
    kind: str
    index: int
    user: str
    reply: str
    missing: list[Any] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.forbidden


def load_conversations(directory: Path = CONVERSATIONS) -> list[dict[str, Any]]:
    """All conversations of the suite, in file order."""
    out = []
    for path in sorted(directory.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conv in doc.get("conversations") or []:
            conv["file"] = path.name
            out.append(conv)
    return out


def check(reply: str, must: list[Any], must_not: list[str]) -> tuple[list[Any], list[str]]:
    """Which required items are missing and which forbidden ones are present."""
    missing = []
    for item in must or []:
        options = item if isinstance(item, list) else [item]
        if not any(str(o) in reply for o in options):
            missing.append(item)
    forbidden = [str(x) for x in must_not or [] if str(x) in reply]
    return missing, forbidden


async def send(session: aiohttp.ClientSession, url: str, sender: str, text: str) -> str:
    """Send one message; return the bot's text replies joined."""
    async with session.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}) as resp:
        if resp.status != 200:
            return f"<HTTP {resp.status}>"
        messages = await resp.json()
    return "\n".join(m.get("text", "") for m in messages if isinstance(m, dict))


async def run_conversation(session: aiohttp.ClientSession, url: str, conv: dict[str, Any]) -> list[TurnResult]:
    """Play one conversation in a fresh session."""
    sender = f"eval-{uuid.uuid4().hex[:12]}"
    results = []
    for i, turn in enumerate(conv.get("turns") or []):
        reply = await send(session, url, sender, str(turn["user"]))
        missing, forbidden = check(reply, turn.get("must") or [], turn.get("must_not") or [])
        results.append(TurnResult(conv["id"], conv.get("kind", "fact"), i, str(turn["user"]), reply, missing, forbidden))
    return results


async def run_suite(url: str, conversations: list[dict[str, Any]], concurrency: int = 4) -> list[list[TurnResult]]:
    """Run all conversations, a few at a time."""
    limit = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def one(conv: dict[str, Any]) -> list[TurnResult]:
            async with limit:
                return await run_conversation(session, url, conv)
        return await asyncio.gather(*(one(c) for c in conversations))


def summarize(results: list[list[TurnResult]]) -> dict[str, Any]:
    """Accuracy figures of a run."""
    turns = [t for conv in results for t in conv]
    answer_turns = [t for t in turns if t.kind != "oos"]
    oos_turns = [t for t in turns if t.kind == "oos"]
    followups = [conv for conv in results if conv and conv[0].kind == "followup"]

    def rate(items: list[Any], ok: Any) -> float:
        return sum(1 for x in items if ok(x)) / len(items) if items else 1.0

    by_kind: dict[str, list[int]] = {}
    for t in turns:
        by_kind.setdefault(t.kind, [0, 0])
        by_kind[t.kind][0] += t.ok
        by_kind[t.kind][1] += 1
    return {
        "turns": len(turns),
        "answer_accuracy": rate(answer_turns, lambda t: t.ok),
        "answer_turns": len(answer_turns),
        "oos_rejection": rate(oos_turns, lambda t: t.ok),
        "oos_turns": len(oos_turns),
        "followup_success": rate(followups, lambda conv: all(t.ok for t in conv)),
        "followup_conversations": len(followups),
        "by_kind": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_kind.items())},
        "failures": [
            {"id": t.conversation, "turn": t.index, "kind": t.kind, "user": t.user, "reply": t.reply,
             "missing": t.missing, "forbidden": t.forbidden}
            for t in turns if not t.ok
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the suite and print the figures; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:5005")
    parser.add_argument("--start", action="store_true", help="start the servers if none answers")
    parser.add_argument("--min-accuracy", type=float, default=0.97)
    parser.add_argument("--min-oos", type=float, default=0.95)
    parser.add_argument("--out", default=str(ROOT / "results" / "eval.json"))
    args = parser.parse_args(argv)

    started = False
    if not is_ready(args.url):
        if not args.start:
            print(f"no server answers at {args.url}/status; run 'make serve' or pass --start", file=sys.stderr)
            return 2
        subprocess.run([str(ROOT / "scripts" / "serve.sh"), "start"], check=True)
        started = True
    try:
        conversations = load_conversations()
        t0 = time.perf_counter()
        results = asyncio.run(run_suite(args.url, conversations))
        summary = summarize(results)
        summary["seconds"] = round(time.perf_counter() - t0, 1)
    finally:
        if started:
            subprocess.run([str(ROOT / "scripts" / "serve.sh"), "stop"], check=False)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    for f in summary["failures"]:
        print(f"FAIL {f['id']}#{f['turn']} [{f['kind']}] {f['user']!r}\n     missing={f['missing']} "
              f"forbidden={f['forbidden']}\n     reply={f['reply'][:160]!r}")
    print(f"\nturns: {summary['turns']}  by kind: {summary['by_kind']}")
    print(f"answer accuracy:   {summary['answer_accuracy']:.1%} of {summary['answer_turns']} turns (target {args.min_accuracy:.0%})")
    print(f"out-of-scope rejected: {summary['oos_rejection']:.1%} of {summary['oos_turns']} turns (target {args.min_oos:.0%})")
    print(f"follow-up success: {summary['followup_success']:.1%} of {summary['followup_conversations']} conversations")
    ok = summary["answer_accuracy"] >= args.min_accuracy and summary["oos_rejection"] >= args.min_oos
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Where the time of one message goes (a benchmark, not a test).

    python -m tests.bench.profile_message [--messages 200] [--turns 50] [--endpoints FILE] [--cprofile OUT]
                                          [--model FILE]

Loads the trained model into this process with the project's endpoints (the tracker store and lock
store of endpoints.yml on a fresh SQLite file; the action server it starts on a free port), sends
conversations of QUESTIONS through Rasa's agent as the REST channel does, and times each stage of
every message with wall clocks around Rasa's own methods:

- NLU: MessageProcessor.parse_message (the whole NLU graph);
- policies: MessageProcessor._predict_next_with_tracker (one call per predicted action);
- action server round trip: RemoteAction.run (the HTTP call and the action's own work);
- tracker load and save: the tracker store's retrieve and save;
- the rest: Rasa's processor and agent around them (lock, events, output channel).

Also the same at turns 1-5 and at turns 46-50 of one long conversation. With --cprofile, a
cProfile of the first set of messages is written to OUT (pstats format). Sanic's own cost (HTTP
parsing, routing, the JSON reply) is measured separately: GET /status of a running server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ["截止日期是什么时候", "主场活动在哪", "那什么时候", "联系电话多少", "怎么报名", "科普日主题是什么",
             "教育局牵头哪个行动", "卫健呢", "代表大会几号开", "你好", "今天天气怎么样", "传真号码"]


class Stages:
    """Wall time per stage of the current message, summed over nested calls of one stage."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.messages: list[dict[str, float]] = []

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                self.current[stage] += (time.perf_counter() - start) * 1000

        setattr(owner, name, timed)

    def wrap_sync(self, owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.current[stage] += (time.perf_counter() - start) * 1000

        setattr(owner, name, timed)

    def done(self, total_ms: float) -> None:
        self.current["total"] = total_ms
        self.messages.append(dict(self.current))
        self.current = defaultdict(float)


def instrument(stages: Stages, agent: Any) -> None:
    """Timers around the Rasa methods of each stage (this process only)."""
    from rasa.core.actions.action import RemoteAction
    from rasa.core.processor import MessageProcessor

    stages.wrap(MessageProcessor, "parse_message", "nlu")
    stages.wrap_sync(MessageProcessor, "_predict_next_with_tracker", "policies")
    stages.wrap(RemoteAction, "run", "action server")
    store = agent.tracker_store
    inner = getattr(store, "_tracker_store", store)  # Rasa wraps it in AwaitableTrackerStore
    stages.wrap(inner, "retrieve", "tracker load")
    stages.wrap(inner, "save", "tracker save")


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def action_server() -> Iterator[int]:
    from tests.ports import free_port

    port = free_port()
    env = {**os.environ, "SANIC_HOST": "127.0.0.1"}
    process = subprocess.Popen([sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _answers(f"http://127.0.0.1:{port}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the action server did not start")
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(30)


def endpoints_file(folder: Path, actions_port: int, source: Path) -> Path:
    text = source.read_text(encoding="utf-8").replace("127.0.0.1:5055", f"127.0.0.1:{actions_port}")
    text = text.replace("db: build/conversations.db", f"db: {folder / 'conversations.db'}")
    out = folder / "endpoints.yml"
    out.write_text(text, encoding="utf-8")
    return out


async def run(args: argparse.Namespace, endpoints: Path) -> dict[str, Any]:
    from rasa.core.agent import load_agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.core.utils import AvailableEndpoints
    from rasa.utils.common import configure_logging_and_warnings

    import bot.server

    # As `rasa run` without --debug: Rasa's debug lines (every tracker state) would be timed too.
    configure_logging_and_warnings(logging.WARNING)
    bot.server._fast_action_result_validation()
    bot.server._sqlite_write_ahead_log()
    model = args.model or (ROOT / "build" / "current_model").read_text().strip()
    agent = await load_agent(model_path=model, endpoints=AvailableEndpoints.read_endpoints(str(endpoints)))
    stages = Stages()
    instrument(stages, agent)

    async def say(sender: str, text: str) -> None:
        start = time.perf_counter()
        await agent.handle_message(UserMessage(text, CollectingOutputChannel(), sender))
        stages.done((time.perf_counter() - start) * 1000)

    for number in range(20):  # warm-up: first calls build TF functions and caches
        await say("warm", QUESTIONS[number % len(QUESTIONS)])
    stages.messages.clear()
    profile = cProfile.Profile() if args.cprofile else None
    if profile:
        profile.enable()
    run_id = uuid.uuid4().hex[:6]
    for number in range(args.messages):  # conversations of 6 messages
        await say(f"profile-{run_id}-{number // 6}", QUESTIONS[number % len(QUESTIONS)])
    if profile:
        profile.disable()
        profile.dump_stats(args.cprofile)
    conversation = list(stages.messages)
    stages.messages.clear()
    long_sender = f"long-{uuid.uuid4().hex[:8]}"
    for number in range(args.turns):
        await say(long_sender, QUESTIONS[number % len(QUESTIONS)])
    long = list(stages.messages)
    return {"messages": table(conversation), "turns_1_5": table(long[:5]), f"turns_{args.turns - 4}_{args.turns}": table(long[-5:])}


def table(messages: list[dict[str, float]]) -> dict[str, float]:
    """Median ms per stage (`other`: the total less the named stages)."""
    names = sorted({name for m in messages for name in m})
    medians = {name: round(statistics.median(m.get(name, 0.0) for m in messages), 2) for name in names}
    main = ("nlu", "policies", "action server", "tracker load", "tracker save")
    medians["other (processor, agent, lock)"] = round(statistics.median(
        m["total"] - sum(m.get(n, 0.0) for n in main) for m in messages), 2)
    return medians


def print_report(report: dict[str, dict[str, float]]) -> None:
    columns = list(report)
    names = [n for n in report[columns[0]] if n != "total"] + ["total"]
    print(f"{'median ms per message':34}" + "".join(f"{c:>16}" for c in columns))
    for name in names:
        print(f"{name:34}" + "".join(f"{report[c].get(name, 0.0):>16.2f}" for c in columns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--endpoints", type=Path, default=ROOT / "endpoints.yml")
    parser.add_argument("--cprofile", help="write a cProfile of the messages to this file")
    parser.add_argument("--model", help="the model file (default: build/current_model)")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as folder, action_server() as port:
        report = asyncio.run(run(args, endpoints_file(Path(folder), port, args.endpoints)))
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())


"""`make bench`: start-up, latency, memory and training time (a benchmark, not a test).

    python -m tests.bench.bench [--skip-train] [--messages 200]

Measures, on this machine:
- training time (a forced full `rasa train` into a temporary folder);
- time from `scripts/serve.sh start` (what `make run` does once trained) to GET /status 200;
- per-message latency p50/p95/p99 for one user, and for 20 concurrent conversations;
- resident memory (VmRSS) of the Rasa server and the action server.
Writes results/bench.json and prints a table; targets are printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
PORT, ACTIONS_PORT = 5305, 5355
URL = f"http://127.0.0.1:{PORT}"
RUN_DIR = ROOT / "build" / f"run-{PORT}"
QUESTIONS = [
    "截止日期是什么时候", "主场活动在哪", "联系电话多少", "怎么报名", "科普日主题是什么",
    "教育局牵头哪个行动", "卫健呢", "代表大会几号开", "有哪些联合行动", "现在还能报名吗",
    "总结材料什么时候交", "传真号码", "你好", "谢谢", "今天天气怎么样", "聯繫電話",
]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def serve(command: str) -> None:
    env = {"RASA_PORT": str(PORT), "ACTIONS_PORT": str(ACTIONS_PORT)}
    subprocess.run([str(ROOT / "scripts" / "serve.sh"), command], check=True, cwd=ROOT,
                   env={**__import__("os").environ, **env}, stdout=subprocess.DEVNULL)


def rss_mb(pid_file: Path) -> float:
    """Resident memory of the process (and its children) in MiB."""
    pid = pid_file.read_text().strip()
    pids = [pid]
    children = subprocess.run(["pgrep", "-P", pid], capture_output=True, text=True).stdout.split()
    pids += children
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return round(total / 1024, 1)


async def conversation(session: aiohttp.ClientSession, messages: list[str]) -> list[float]:
    sender = f"bench-{uuid.uuid4().hex[:10]}"
    timings = []
    for text in messages:
        start = time.perf_counter()
        async with session.post(f"{URL}/webhooks/rest/webhook", json={"sender": sender, "message": text}) as resp:
            await resp.read()
            assert resp.status == 200
        timings.append((time.perf_counter() - start) * 1000)
    return timings


async def latency(users: int, per_user: int, per_conversation: int = 10) -> list[float]:
    """Each user holds conversations of `per_conversation` messages, one after another."""
    async def user(session: aiohttp.ClientSession, u: int) -> list[float]:
        plan = [QUESTIONS[(u * 7 + i) % len(QUESTIONS)] for i in range(per_user)]
        timings: list[float] = []
        for start in range(0, per_user, per_conversation):
            timings += await conversation(session, plan[start:start + per_conversation])
        return timings

    async with aiohttp.ClientSession() as session:
        # Warm-up so first-call costs (graph, jieba, connection pools) are not counted.
        await conversation(session, QUESTIONS[:5])
        results = await asyncio.gather(*(user(session, u) for u in range(users)))
    return [t for r in results for t in r]


def train_seconds() -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([str(ROOT / ".venv" / "bin" / "rasa"), "train", "--force", "--out", out,
                        "--config", "config.yml", "--domain", "domain.yml", "--data", "data", "--quiet"],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        return round(time.perf_counter() - start, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-train", action="store_true", help="do not measure training time")
    parser.add_argument("--messages", type=int, default=200, help="messages for the one-user run")
    args = parser.parse_args(argv)
    report: dict[str, object] = {}
    if not args.skip_train:
        print("measuring training time (forced full train) ...", flush=True)
        report["train_seconds"] = train_seconds()
    serve("stop")
    start = time.perf_counter()
    serve("start")
    report["ready_seconds"] = round(time.perf_counter() - start, 1)
    try:
        one = asyncio.run(latency(1, args.messages))
        many = asyncio.run(latency(20, 10))
        for name, values in (("one_user", one), ("20_concurrent", many)):
            report[name] = {
                "messages": len(values),
                "p50_ms": round(percentile(values, 50), 1),
                "p95_ms": round(percentile(values, 95), 1),
                "p99_ms": round(percentile(values, 99), 1),
                "mean_ms": round(statistics.mean(values), 1),
            }
        report["rss_mb"] = {"rasa": rss_mb(RUN_DIR / "rasa.pid"), "actions": rss_mb(RUN_DIR / "actions.pid")}
    finally:
        serve("stop")
    out = ROOT / "results" / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps(report, ensure_ascii=False, indent=2))
    print("targets: one-user p95 <= 50 ms; training <= 180 s; ready <= 30 s after training")
    return 0


if __name__ == "__main__":
    sys.exit(main())

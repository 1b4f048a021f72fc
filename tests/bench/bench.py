"""`make bench`: this project against a stock Rasa bot, side by side in one run (a benchmark, not a test).

    python -m tests.bench.bench [--skip-train] [--messages 200] [--rounds 2] [--targets project,cluster,stock]

The anchor is a stock Rasa 3.6 bot (tests/bench/stock/: the default Chinese pipeline, rules plus
TEDPolicy, answers from responses, in-memory tracker store), trained by this bench when its data
changed. Three servers run at once: the project as `make run` starts it (one Rasa process, SQLite),
the project as `make run-cluster` starts it (two replicas behind nginx, PostgreSQL and Redis of its
own, on free ports) and the stock bot. They are measured in turns (project,
cluster, stock, project, ...), so a busy machine slows all alike. Measured, for each:
- per-message latency p50/p95/p99 for one user;
- 20 concurrent conversations: messages per second and p95;
- the cost at turn 1-5 against turn 46-50 of one 50-message conversation (must not grow);
- resident memory (VmRSS) of each Rasa server and, for the project, its action server.
Also the project's training time (a forced full `rasa train` into a temporary folder) and the time
from `scripts/serve.sh start` to GET /status 200. Writes results/bench.json and prints a table with
the project/stock and cluster/stock ratios beside the targets of issue 10.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bot.staff.live import is_ready

ROOT = Path(__file__).resolve().parents[2]
STOCK = ROOT / "tests" / "bench" / "stock"
STOCK_MODELS = ROOT / "build" / "bench-stock"
PORT, ACTIONS_PORT, STOCK_PORT = 5305, 5355, 5306
QUESTIONS = [
    "截止日期是什么时候", "主场活动在哪", "联系电话多少", "怎么报名", "科普日主题是什么",
    "教育局牵头哪个行动", "卫健呢", "代表大会几号开", "有哪些联合行动", "现在还能报名吗",
    "总结材料什么时候交", "传真号码", "你好", "谢谢", "今天天气怎么样", "聯繫電話",
]
RASA = str(ROOT / ".venv" / "bin" / "rasa")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def rss_mb(pid: int | str) -> float:
    """Resident memory of the process (and its children) in MiB."""
    pids = [str(pid)]
    pids += subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return round(total / 1024, 1)


# -- the two servers -----------------------------------------------------------------

@dataclass
class Target:
    """A server under measurement: how to start and stop it, and the processes to weigh."""

    name: str
    url: str
    start: Callable[[], None]
    stop: Callable[[], None]
    pids: Callable[[], dict[str, str]]
    runs: list[dict] = field(default_factory=list)
    address: Callable[[], str] | None = None  # the URL, when it is known only once started

    @property
    def base(self) -> str:
        return self.address() if self.address else self.url


def _serve_project(command: str) -> None:
    env = {**os.environ, "RASA_PORT": str(PORT), "ACTIONS_PORT": str(ACTIONS_PORT)}
    subprocess.run([str(ROOT / "scripts" / "serve.sh"), command], check=True, cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL)


def _project_pids() -> dict[str, str]:
    run = ROOT / "build" / f"run-{PORT}"
    return {name: (run / f"{name}.pid").read_text().strip() for name in ("rasa", "actions")}


def project_target() -> Target:
    return Target("project", f"http://127.0.0.1:{PORT}", lambda: _serve_project("start"),
                  lambda: _serve_project("stop"), _project_pids)


def cluster_target() -> Target:
    """`make run-cluster`'s layout on free ports (two replicas behind nginx, PostgreSQL, Redis of its
    own, tests/cluster.py), measured through nginx; memory per replica (Rasa + its action server)."""
    from tests.cluster import own_cluster

    stack = contextlib.ExitStack()
    started: list = []

    def start() -> None:
        started.append(stack.enter_context(own_cluster()))

    def pids() -> dict[str, str]:
        cluster = started[-1]
        return {f"replica {n + 1} {name}": str(cluster.pid(port, name))
                for n, port in enumerate(cluster.replica_ports) for name in ("rasa", "actions")}

    return Target("cluster", "", start, stack.close, pids, address=lambda: started[-1].front)


def stock_model() -> Path:
    """The stock anchor's model, trained when tests/bench/stock/ changed."""
    digest = hashlib.sha256()
    for path in sorted(STOCK.rglob("*.yml")):
        digest.update(path.relative_to(STOCK).as_posix().encode() + path.read_bytes())
    digest.update((ROOT / "requirements.lock").read_bytes())
    model = STOCK_MODELS / f"stock-{digest.hexdigest()[:16]}.tar.gz"
    if not model.exists():
        print("training the stock anchor (tests/bench/stock) ...", flush=True)
        STOCK_MODELS.mkdir(parents=True, exist_ok=True)
        subprocess.run([RASA, "train", "--config", "config.yml", "--domain", "domain.yml", "--data", "data",
                        "--out", str(STOCK_MODELS), "--fixed-model-name", model.name.removesuffix(".tar.gz"),
                        "--quiet"], check=True, cwd=STOCK, stdout=subprocess.DEVNULL)
    return model


def stock_target(model: Path) -> Target:
    log = STOCK_MODELS / "rasa.log"
    process: list[subprocess.Popen] = []

    def start() -> None:
        # --enable-api: GET /status (readiness and memory, as for the project) exists only with the API on.
        with open(log, "w", encoding="utf-8") as out:
            process.append(subprocess.Popen(
                [RASA, "run", "--model", str(model), "--port", str(STOCK_PORT), "-i", "127.0.0.1",
                 "--enable-api", "--endpoints", str(STOCK / "endpoints.yml")], cwd=STOCK, stdout=out, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 180
        while not is_ready(f"http://127.0.0.1:{STOCK_PORT}"):
            if process[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the stock anchor did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)

    def stop() -> None:
        for p in process:
            p.terminate()
            p.wait(30)

    return Target("stock", f"http://127.0.0.1:{STOCK_PORT}", start, stop,
                  lambda: {"rasa": str(process[-1].pid)})


# -- the loads -----------------------------------------------------------------------

async def conversation(session: aiohttp.ClientSession, url: str, messages: list[str]) -> list[float]:
    sender = f"bench-{uuid.uuid4().hex[:10]}"
    timings = []
    for text in messages:
        start = time.perf_counter()
        async with session.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        timings.append((time.perf_counter() - start) * 1000)
    return timings


async def latency(url: str, users: int, per_user: int, per_conversation: int = 10) -> tuple[list[float], float]:
    """Each user holds conversations of `per_conversation` messages, one after another.

    Returns every message's latency (ms) and the wall time of the whole load (s)."""
    async def user(session: aiohttp.ClientSession, u: int) -> list[float]:
        plan = [QUESTIONS[(u * 7 + i) % len(QUESTIONS)] for i in range(per_user)]
        timings: list[float] = []
        for start in range(0, per_user, per_conversation):
            timings += await conversation(session, url, plan[start:start + per_conversation])
        return timings

    async with aiohttp.ClientSession() as session:
        # Warm-up so first-call costs (graph, jieba, connection pools) are not counted.
        await conversation(session, url, QUESTIONS[:5])
        t0 = time.perf_counter()
        results = await asyncio.gather(*(user(session, u) for u in range(users)))
        wall = time.perf_counter() - t0
    return [t for r in results for t in r], wall


def _figures(values: list[float]) -> dict[str, float]:
    return {"messages": len(values), "p50_ms": round(percentile(values, 50), 1),
            "p95_ms": round(percentile(values, 95), 1), "p99_ms": round(percentile(values, 99), 1),
            "mean_ms": round(statistics.mean(values), 1)}


def measure(target: Target, messages: int) -> dict:
    one, _ = asyncio.run(latency(target.base, 1, messages))
    many, wall = asyncio.run(latency(target.base, 20, 20))
    long, _ = asyncio.run(latency(target.base, 1, 50, per_conversation=50))
    return {"one_user": _figures(one),
            "20_concurrent": {**_figures(many), "msg_per_s": round(len(many) / wall, 1)},
            "long_conversation": {"turns_1_5_p50_ms": round(statistics.median(long[:5]), 1),
                                  "turns_46_50_p50_ms": round(statistics.median(long[-5:]), 1)},
            "rss_mb": {name: rss_mb(pid) for name, pid in target.pids().items()}}


def _best(runs: list[dict]) -> dict:
    """Of the alternating rounds, the one with the most msg/s (the least disturbed)."""
    return max(runs, key=lambda r: r["20_concurrent"]["msg_per_s"])


def ratios(project: dict, stock: dict) -> dict[str, float]:
    return {
        "msg_per_s": round(project["20_concurrent"]["msg_per_s"] / stock["20_concurrent"]["msg_per_s"], 2),
        "one_user_p50": round(project["one_user"]["p50_ms"] / stock["one_user"]["p50_ms"], 2),
        "20_concurrent_p95": round(project["20_concurrent"]["p95_ms"] / stock["20_concurrent"]["p95_ms"], 2),
    }


def _memory(rss: dict[str, float]) -> str:
    """Rasa + actions, per replica for the cluster."""
    replicas: dict[str, list[float]] = {}
    for name, mib in rss.items():
        replicas.setdefault(name.rsplit(" ", 1)[0] if name.startswith("replica") else "", []).append(mib)
    return " | ".join(" + ".join(f"{v:.0f}" for v in values) for values in replicas.values())


def _rows(report: dict, name: str) -> list[str]:
    t = report[name]
    long = t["long_conversation"]
    return [f"{t['one_user']['p50_ms']} / {t['one_user']['p95_ms']}", str(t["20_concurrent"]["msg_per_s"]),
            str(t["20_concurrent"]["p95_ms"]), f"{long['turns_1_5_p50_ms']} / {long['turns_46_50_p50_ms']}",
            _memory(t["rss_mb"])]


def table(report: dict) -> list[str]:
    """project, cluster (when measured) and stock side by side, each with its ratio to stock."""
    names = [n for n in ("project", "cluster", "stock") if n in report]
    labels = ["1 user p50 / p95 (ms)", "20 concurrent msg/s", "20 concurrent p95 (ms)", "turn 1-5 / 46-50 p50 (ms)",
              "memory MiB (Rasa + actions)"]
    targets = ["p50 <= 1.0x stock", ">= 1.7x stock", "<= 250 ms", "no growth", "<= 1 229 per replica"]
    columns = {name: _rows(report, name) for name in names}
    ratio_keys = ["one_user_p50", "msg_per_s", "20_concurrent_p95", None, None]
    for name in names[:-1]:
        r = report[f"ratios_{name}"] if f"ratios_{name}" in report else report["ratios"]
        columns[f"{name}/stock"] = [f"{r[k]}x" if k else "" for k in ratio_keys]
    width = {name: max(14, *(len(v) + 2 for v in values)) for name, values in columns.items()}
    lines = [f"{'':30}" + "".join(f"{name:>{width[name]}}" for name in columns) + "   target"]
    for index, label in enumerate(labels):
        lines.append(f"{label:30}" + "".join(f"{columns[name][index]:>{width[name]}}" for name in columns)
                     + f"   {targets[index]}")
    return lines


def train_seconds() -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([RASA, "train", "--force", "--out", out,
                        "--config", "config.yml", "--domain", "domain.yml", "--data", "data", "--quiet"],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        return round(time.perf_counter() - start, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--skip-train", action="store_true", help="do not measure the project's training time")
    parser.add_argument("--messages", type=int, default=200, help="messages for the one-user run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server")
    parser.add_argument("--targets", default="project,cluster,stock",
                        help="which of project, cluster, stock to measure (comma-separated; stock always)")
    args = parser.parse_args(argv)
    report: dict[str, object] = {}
    if not args.skip_train:
        print("measuring training time (forced full train) ...", flush=True)
        report["train_seconds"] = train_seconds()
    wanted = set(args.targets.split(","))
    targets = [*([project_target()] if "project" in wanted else []),
               *([cluster_target()] if "cluster" in wanted else []), stock_target(stock_model())]
    if targets[0].name == "project":
        targets[0].stop()
        start = time.perf_counter()
        targets[0].start()
        report["ready_seconds"] = round(time.perf_counter() - start, 1)
    try:
        for target in targets[1 if "ready_seconds" in report else 0:]:
            print(f"starting {target.name} ...", flush=True)
            target.start()
        for round_ in range(args.rounds):
            for target in targets:
                print(f"round {round_ + 1}: {target.name} ...", flush=True)
                target.runs.append(measure(target, args.messages))
    finally:
        for target in targets:
            target.stop()
    for target in targets:
        report[target.name] = _best(target.runs)
        report[f"{target.name}_rounds"] = target.runs
    if "project" in report:
        report["ratios"] = ratios(report["project"], report["stock"])  # type: ignore[arg-type]
    if "cluster" in report:
        report["ratios_cluster"] = ratios(report["cluster"], report["stock"])  # type: ignore[arg-type]
    out = ROOT / "results" / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print("\n".join(table(report)))
    print(f"training {report.get('train_seconds', '-')} s; ready {report.get('ready_seconds', '-')} s after start; "
          f"details in {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

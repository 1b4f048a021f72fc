"""`make loadtest`: locust, headless, against a cluster of `make run-cluster` (a benchmark, not a test).

    python -m tests.load.run [--users 200] [--seconds 60] [--spawn-rate 40] [--url URL]

Without --url it starts a cluster on free ports, on a PostgreSQL and a redis-server of its own
(tests/cluster.py), and stops it afterwards; with --url it loads the cluster there. The users are
tests/load/locustfile.py: multi-turn conversations whose replies are checked in order and in
context. Writes under results/: loadtest_stats.csv, loadtest_stats_history.csv (locust's own),
loadtest.json (the figures) and loadtest.png (latency percentiles and requests/s over time).
Exit status 1 when any request failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
LOCUST = str(ROOT / ".venv" / "bin" / "locust")
PREFIX = RESULTS / "loadtest"


def run_locust(url: str, users: int, seconds: int, spawn_rate: float) -> int:
    command = [LOCUST, "-f", str(ROOT / "tests" / "load" / "locustfile.py"), "--headless", "--host", url,
               "-u", str(users), "-r", str(spawn_rate), "-t", f"{seconds}s", "--stop-timeout", "30",
               "--csv", str(PREFIX), "--csv-full-history", "--only-summary", "--loglevel", "WARNING"]
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _number(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def summary(users: int, seconds: int) -> dict:
    """The aggregated figures of locust's stats file, per turn and in all."""
    rows = _rows(Path(f"{PREFIX}_stats.csv"))
    report: dict = {"users": users, "seconds": seconds, "by_turn": {}}
    for row in rows:
        figures = {"requests": int(_number(row["Request Count"])), "failures": int(_number(row["Failure Count"])),
                   "requests_per_s": round(_number(row["Requests/s"]), 1),
                   "p50_ms": _number(row["50%"]), "p95_ms": _number(row["95%"]), "p99_ms": _number(row["99%"]),
                   "max_ms": round(_number(row["Max Response Time"]))}
        if row["Name"] == "Aggregated":
            report.update(figures)
        else:
            report["by_turn"][row["Name"]] = figures
    failures = Path(f"{PREFIX}_failures.csv")
    report["failure_kinds"] = [{"error": r["Error"], "count": int(_number(r["Occurrences"]))}
                               for r in _rows(failures)] if failures.exists() else []
    return report


def plot(report: dict) -> Path:
    """Latency percentiles (locust's 10-second window) and requests/s against time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = [r for r in _rows(Path(f"{PREFIX}_stats_history.csv")) if r["Name"] == "Aggregated"]
    start = _number(history[0]["Timestamp"]) if history else 0.0
    seconds = [_number(r["Timestamp"]) - start for r in history]
    figure, latency = plt.subplots(figsize=(10, 5))
    for column, style in (("50%", "-"), ("95%", "--"), ("99%", ":")):
        latency.plot(seconds, [_number(r[column]) for r in history], style, label=f"p{column.rstrip('%')}")
    latency.set_xlabel("seconds since start")
    latency.set_ylabel("latency (ms)")
    rate = latency.twinx()
    rate.plot(seconds, [_number(r["Requests/s"]) for r in history], color="grey", alpha=0.5, label="requests/s")
    rate.set_ylabel("requests/s")
    lines = latency.get_legend_handles_labels()[0] + rate.get_legend_handles_labels()[0]
    labels = latency.get_legend_handles_labels()[1] + rate.get_legend_handles_labels()[1]
    latency.legend(lines, labels, loc="upper left")
    latency.set_title(f"make loadtest: {report['users']} users, {report['requests']} requests, "
                      f"{report['failures']} failures; p50/p95/p99 {report['p50_ms']:.0f}/"
                      f"{report['p95_ms']:.0f}/{report['p99_ms']:.0f} ms")
    figure.tight_layout()
    out = RESULTS / "loadtest.png"
    figure.savefig(out, dpi=100)
    return out


def warm(url: str) -> None:
    """One conversation per replica, so the first users do not pay for first-call costs."""
    for number in range(4):
        body = json.dumps({"sender": f"load-warm-{number}", "message": "截止日期是什么时候"}).encode()
        request = urllib.request.Request(f"{url}/webhooks/rest/webhook", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as resp:
            resp.read()


def measure(url: str, args: argparse.Namespace, cluster: object | None = None) -> dict:
    warm(url)
    started = time.time()
    code = run_locust(url, args.users, args.seconds, args.spawn_rate)
    report = summary(args.users, args.seconds)
    report["locust_exit_code"] = code
    report["started"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
    if cluster is not None:
        from tests.bench.bench import rss_mb

        report["rss_mb"] = {f"replica {port}": {name: rss_mb(cluster.pid(port, name)) for name in ("rasa", "actions")}  # type: ignore[attr-defined]
                            for port in cluster.replica_ports}  # type: ignore[attr-defined]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--spawn-rate", type=float, default=40)
    parser.add_argument("--url", help="a running cluster's address (default: start one on free ports)")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.url:
        report = measure(args.url, args)
    else:
        from tests.cluster import own_cluster

        print("starting a cluster on free ports (two replicas, nginx, PostgreSQL, Redis) ...", flush=True)
        with own_cluster() as cluster:
            print(f"cluster ready in {cluster.started_in:.0f} s at {cluster.front}", flush=True)
            report = measure(cluster.front, args, cluster)
    (RESULTS / "loadtest.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    png = plot(report)
    print(f"{report['users']} users, {args.seconds} s: {report['requests']} requests, {report['failures']} failures, "
          f"{report['requests_per_s']} requests/s; p50 {report['p50_ms']:.0f} ms, p95 {report['p95_ms']:.0f} ms, "
          f"p99 {report['p99_ms']:.0f} ms, max {report['max_ms']} ms")
    for kind in report["failure_kinds"][:10]:
        print(f"  {kind['count']} x {kind['error']}")
    print(f"details: {(RESULTS / 'loadtest.json').relative_to(ROOT)}, {png.relative_to(ROOT)}")
    return 1 if report["failures"] or report.get("requests", 0) == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

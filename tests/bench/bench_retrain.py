"""`make bench-retrain`: how long a staff FAQ takes to go live, and what the
traffic sees meanwhile (a benchmark, not a test).

    python -m tests.bench.bench_retrain [--url http://127.0.0.1:5005] [--workers 4]

With the live server up (started with scripts/serve.sh start if none answers,
and stopped again at the end), while a load loop keeps a few concurrent
conversations going on the live server the whole time:
1. adds one FAQ through the library (bot.staff.faqs.add_faq) and runs
   bot.staff.retrain.retrain(); a poller asks three paraphrases of the FAQ
   that are NOT among its examples every 2 s and records when all three get
   its answer (first through the FAQ matcher, as soon as the retrain has
   rebuilt the knowledge database; then from the retrained model if it
   passes the quality gate and is swapped in);
2. removes the FAQ and retrains back;
3. retrains from scratch on unchanged data (retrain(full=True)): a complete
   train -> gate -> hot swap, timed end to end;
4. rolls back to the model that was live before step 3 (another swap).
Prints the figures and writes results/bench_retrain.json: each step's
seconds, the gate's verdict, the time from adding the FAQ until the live
server answers the paraphrases, and the load loop's totals (requests,
non-200s, replies without text, errors) -- the target is zero failed or
dropped requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.staff import faqs, retrain
from bot.staff.live import is_ready

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "results" / "bench_retrain.json"

BENCH_FAQ = {
    "id": "bench_photos",
    "questions": [
        "科普日活动现场可以拍照吗",
        "活动时能不能录像",
        "参加科普日活动可以拍视频吗",
        "在活动现场拍照留念可以吗",
        "科普日现场允许摄影吗",
        "活动当天让不让摄像",
        "能在科普日活动上拍照片分享吗",
    ],
    "answer": "可以。欢迎在科普日活动现场拍照、录像并分享，请注意不要影响活动秩序，拍摄他人时请先征得同意。",
}
# Asked of the live server; none of them is an example of the FAQ.
PARAPHRASES = ["活动现场能拍照片吗", "拍照录像在现场允许不", "在科普日现场录像可以吗"]
EXPECTED = "欢迎在科普日活动现场拍照"

LOAD_QUESTIONS = [
    "截止日期是什么时候", "主场活动在哪", "联系电话多少", "怎么报名", "科普日主题是什么", "教育局牵头哪个行动",
    "卫健呢", "代表大会几号开", "有哪些联合行动", "现在还能报名吗", "总结材料什么时候交", "传真号码", "你好",
    "谢谢", "今天天气怎么样", "举办这次科普日活动的目的是什么",
]
MAX_REQUESTS = 6000
MAX_SECONDS = 1800.0


@dataclass
class Load:
    """Counts of the load loop."""

    requests: int = 0
    ok: int = 0
    non_200: int = 0
    no_text: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(q: float) -> float:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else 0.0

        data = asdict(self)
        data.pop("latencies_ms")
        data.update(p50_ms=pct(0.5), p95_ms=pct(0.95), p99_ms=pct(0.99), max_ms=round(max(lat), 1) if lat else 0.0,
                    mean_ms=round(statistics.fmean(lat), 1) if lat else 0.0,
                    failed_or_dropped=self.non_200 + self.no_text + self.errors)
        return data


async def load_loop(url: str, workers: int, stop: asyncio.Event, load: Load) -> None:
    """A few concurrent conversations until `stop` (bounded in count and time)."""
    deadline = time.monotonic() + MAX_SECONDS
    timeout = aiohttp.ClientTimeout(total=120)

    async def worker(n: int) -> None:
        i = n
        sender = f"bench-load-{uuid.uuid4().hex[:8]}"
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set() and load.requests < MAX_REQUESTS and time.monotonic() < deadline:
                if i % 6 == 0:
                    sender = f"bench-load-{uuid.uuid4().hex[:8]}"
                text = LOAD_QUESTIONS[i % len(LOAD_QUESTIONS)]
                i += 1
                load.requests += 1
                t0 = time.perf_counter()
                try:
                    async with session.post(f"{url}/webhooks/rest/webhook",
                                            json={"sender": sender, "message": text}) as resp:
                        body = await resp.json(content_type=None) if resp.status == 200 else None
                        status = resp.status
                except Exception as exc:  # a dropped request is what we count
                    load.errors += 1
                    if len(load.error_samples) < 5:
                        load.error_samples.append(f"{type(exc).__name__}: {exc}")
                    continue
                load.latencies_ms.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    load.non_200 += 1
                elif not any(isinstance(m, dict) and m.get("text") for m in body or []):
                    load.no_text += 1
                else:
                    load.ok += 1
                await asyncio.sleep(0.3)

    await asyncio.gather(*(worker(n) for n in range(workers)))


async def poll_paraphrases(url: str, expected: str, stop: asyncio.Event, t0: float) -> dict[str, Any]:
    """Ask the paraphrases every 2 s until all three get the FAQ's answer; return when and what."""
    timeout = aiohttp.ClientTimeout(total=120)
    replies: dict[str, str] = {}
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            answered = True
            for text in PARAPHRASES:
                try:
                    async with session.post(f"{url}/webhooks/rest/webhook",
                                            json={"sender": f"bench-probe-{uuid.uuid4().hex[:8]}", "message": text}
                                            ) as resp:
                        body = await resp.json(content_type=None) if resp.status == 200 else []
                except Exception:
                    body = []
                reply = "\n".join(m.get("text", "") for m in body or [] if isinstance(m, dict))
                replies[text] = reply
                answered = answered and expected in reply
            if answered:
                return {"answered": True, "seconds_from_add": round(time.perf_counter() - t0, 1),
                        "replies": {k: v[:80] for k, v in replies.items()}}
            if stop.is_set():
                return {"answered": False, "seconds_from_add": None,
                        "replies": {k: v[:80] for k, v in replies.items()}}
            await asyncio.sleep(2.0)


async def timed(url: str, workers: int, work: Callable[[Callable[[str, float], None]], Any],
                expected: str | None, t0: float) -> dict[str, Any]:
    """`work(progress)` in a thread, with the load loop (and the paraphrase poller) running meanwhile."""
    stop = asyncio.Event()
    load = Load()
    last: dict[str, str] = {}

    def progress(label: str, fraction: float) -> None:
        if label != last.get("label"):
            print(f"  [{time.perf_counter() - t0:7.1f}s] {fraction:5.0%} {label}", flush=True)
            last["label"] = label

    loop_task = asyncio.create_task(load_loop(url, workers, stop, load))
    poll_task = asyncio.create_task(poll_paraphrases(url, expected, stop, t0)) if expected else None
    result = await asyncio.to_thread(work, progress)
    seconds = round(time.perf_counter() - t0, 1)
    poll = None
    if poll_task:
        try:  # a little time for the swapped model; the poller ends once all three are answered
            poll = await asyncio.wait_for(asyncio.shield(poll_task), timeout=60)
        except asyncio.TimeoutError:
            stop.set()
            poll = await poll_task
    await asyncio.sleep(2.0)  # traffic right after the swap counts too
    stop.set()
    await loop_task
    report: dict[str, Any] = {"seconds": seconds, "paraphrases": poll, "load": load.summary()}
    if isinstance(result, retrain.RetrainResult):
        report.update({
            "deployed": result.deployed, "model": result.model, "reason": result.reason,
            "retrain_seconds": result.seconds, "steps": result.steps,
            "gate": {k: result.gate.get(k) for k in ("candidate_accuracy", "live_accuracy", "passed", "unchanged")},
        })
    else:
        report.update({"deployed": True, "model": str(result), "reason": f"rolled back to {result}",
                       "retrain_seconds": None, "steps": []})
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if a request failed, the FAQ never went live or no swap happened."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5005")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    os.environ.setdefault("KEPU_LIVE_URLS", args.url)

    started = False
    if not is_ready(args.url):
        print(f"no server at {args.url}: starting one with scripts/serve.sh start")
        subprocess.run([str(ROOT / "scripts" / "serve.sh"), "start"], check=True, cwd=ROOT)
        started = True
    report: dict[str, Any] = {"url": args.url, "workers": args.workers, "faq": BENCH_FAQ["id"],
                              "paraphrases": PARAPHRASES, "model_before": retrain.current_model()}
    phases: list[str] = []
    models_before = set((ROOT / "models").rglob("*.tar.gz"))
    try:
        if any(f.id == BENCH_FAQ["id"] for f in faqs.list_faqs()):
            faqs.remove_faq(BENCH_FAQ["id"], actor="bench")
        print(f"1. add FAQ {BENCH_FAQ['id']} and retrain under load ({args.workers} conversations)")
        t0 = time.perf_counter()
        faqs.add_faq(BENCH_FAQ["id"], BENCH_FAQ["questions"], BENCH_FAQ["answer"], actor="bench")
        report["add"] = asyncio.run(timed(args.url, args.workers, lambda p: retrain.retrain(p), EXPECTED, t0))
        phases.append("add")
        print("2. remove the FAQ and retrain back under load")
        t1 = time.perf_counter()
        faqs.remove_faq(BENCH_FAQ["id"], actor="bench")
        report["remove"] = asyncio.run(timed(args.url, args.workers, lambda p: retrain.retrain(p), None, t1))
        phases.append("remove")
        print("3. full retrain (from scratch, unchanged data): train -> gate -> hot swap under load")
        t2 = time.perf_counter()
        report["full"] = asyncio.run(timed(args.url, args.workers, lambda p: retrain.retrain(p, full=True), None, t2))
        phases.append("full")
        if report["full"]["deployed"]:
            print("4. roll back to the previous model under load")
            t3 = time.perf_counter()
            report["rollback"] = asyncio.run(timed(args.url, args.workers, lambda p: retrain.rollback(), None, t3))
            phases.append("rollback")
        report["model_after"] = retrain.current_model()
    finally:
        if any(f.id == BENCH_FAQ["id"] for f in faqs.list_faqs()):
            faqs.remove_faq(BENCH_FAQ["id"], actor="bench")
        # Models made here (the FAQ's, the from-scratch one) are not live any more: drop them, so
        # the next run trains again instead of reusing them.
        live_now = retrain.current_model()
        for path in set((ROOT / "models").rglob("*.tar.gz")) - models_before:
            if not live_now.endswith(path.name):
                path.unlink(missing_ok=True)
        if started:
            subprocess.run([str(ROOT / "scripts" / "serve.sh"), "stop"], check=False, cwd=ROOT)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    failed = 0
    for phase in phases:
        r = report[phase]
        load = r["load"]
        failed += load["failed_or_dropped"]
        steps = "  ".join(f"{n} {s:.0f}s" for n, s in r["steps"])
        print(f"\n{phase}: deployed={r['deployed']}  {r['seconds']:.0f}s ({steps})")
        print(f"  {r['reason']}")
        if r["paraphrases"]:
            p = r["paraphrases"]
            print(f"  add -> live answers all 3 unseen paraphrases: {p['seconds_from_add']}s" if p["answered"]
                  else f"  paraphrases NOT answered: {p['replies']}")
        print(f"  load: {load['requests']} requests, {load['ok']} ok, {load['non_200']} non-200, "
              f"{load['no_text']} without text, {load['errors']} errors; p50 {load['p50_ms']} ms, "
              f"p95 {load['p95_ms']} ms, max {load['max_ms']} ms")
    print(f"\nwritten: {OUT.relative_to(ROOT)}")
    answered = bool(report.get("add", {}).get("paraphrases", {}) and report["add"]["paraphrases"]["answered"])
    swapped = "rollback" in phases
    return 0 if failed == 0 and answered and swapped else 1


if __name__ == "__main__":
    sys.exit(main())

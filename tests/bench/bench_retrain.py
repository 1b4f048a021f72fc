"""`make bench-retrain`: how long a staff FAQ takes to go live, and what the
traffic sees meanwhile (a benchmark, not a test).

    python -m tests.bench.bench_retrain [--url http://127.0.0.1:5005] [--workers 4]

With the live server up (started with scripts/serve.sh start if none answers,
and stopped again at the end), this:
1. adds one FAQ through the library (bot.staff.faqs.add_faq);
2. runs bot.staff.retrain.retrain() while a load loop keeps a few concurrent
   conversations going on the live server, and a poller asks three paraphrases
   of the FAQ that are NOT among its examples, until all three get its answer;
3. removes the FAQ and retrains back (the load loop runs again).
Prints the figures and writes results/bench_retrain.json: retrain steps and
seconds, wall time from adding the FAQ until the live server answers the
paraphrases, and the load loop's totals (requests, non-200s, replies without
text, errors) -- the target is zero failed or dropped requests.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.staff import faqs, retrain
from bot.staff.live import is_ready

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "results" / "bench_retrain.json"

BENCH_FAQ = {
    "id": "bench_pets",
    "questions": [
        "科普日活动可以带宠物吗",
        "活动现场允许带宠物进入吗",
        "能牵着狗去参加科普日吗",
        "可以带猫去科普日活动吗",
        "宠物能进科普日活动场地吗",
        "科普日现场能带小狗吗",
        "活动那天让不让带宠物",
    ],
    "answer": "为保证现场安全，科普日活动现场请勿携带宠物（导盲犬除外），具体入场要求以各活动举办单位的现场安排为准。",
}
# Asked of the live server; none of them is an example of the FAQ.
PARAPHRASES = ["能带狗去科普日现场吗", "猫狗可以进活动场地吗", "带宠物参加科普日行不行"]
EXPECTED = "请勿携带宠物"

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


async def timed_retrain(url: str, workers: int, expected: str | None, t0: float) -> dict[str, Any]:
    """retrain() in a thread, with the load loop (and the paraphrase poller) running meanwhile."""
    stop = asyncio.Event()
    load = Load()
    last: dict[str, str] = {}

    def progress(label: str, fraction: float) -> None:
        if label != last.get("label"):
            print(f"  [{time.perf_counter() - t0:7.1f}s] {fraction:5.0%} {label}", flush=True)
            last["label"] = label

    loop_task = asyncio.create_task(load_loop(url, workers, stop, load))
    poll_task = asyncio.create_task(poll_paraphrases(url, expected, stop, t0)) if expected else None
    result = await asyncio.to_thread(retrain.retrain, progress)
    if poll_task:
        # Give the swapped model a little time; the poller ends once all three are answered.
        with_deadline = asyncio.wait_for(asyncio.shield(poll_task), timeout=60)
        try:
            poll = await with_deadline
        except asyncio.TimeoutError:
            stop.set()
            poll = await poll_task
    else:
        poll = None
    stop.set()
    await loop_task
    return {
        "deployed": result.deployed, "model": result.model, "reason": result.reason,
        "retrain_seconds": result.seconds, "steps": result.steps,
        "gate": {k: result.gate.get(k) for k in ("candidate_accuracy", "live_accuracy", "passed", "unchanged")},
        "paraphrases": poll, "load": load.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if a request failed or the FAQ never went live."""
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
    try:
        if any(f.id == BENCH_FAQ["id"] for f in faqs.list_faqs()):
            faqs.remove_faq(BENCH_FAQ["id"], actor="bench")
        print(f"1. add FAQ {BENCH_FAQ['id']} and retrain under load ({args.workers} conversations)")
        t0 = time.perf_counter()
        faqs.add_faq(BENCH_FAQ["id"], BENCH_FAQ["questions"], BENCH_FAQ["answer"], actor="bench")
        report["add"] = asyncio.run(timed_retrain(args.url, args.workers, EXPECTED, t0))
        report["add"]["wall_seconds"] = round(time.perf_counter() - t0, 1)
        print("2. remove the FAQ and retrain back under load")
        t1 = time.perf_counter()
        faqs.remove_faq(BENCH_FAQ["id"], actor="bench")
        report["remove"] = asyncio.run(timed_retrain(args.url, args.workers, None, t1))
        report["remove"]["wall_seconds"] = round(time.perf_counter() - t1, 1)
        report["model_after"] = retrain.current_model()
    finally:
        if any(f.id == BENCH_FAQ["id"] for f in faqs.list_faqs()):
            faqs.remove_faq(BENCH_FAQ["id"], actor="bench")
        if started:
            subprocess.run([str(ROOT / "scripts" / "serve.sh"), "stop"], check=False, cwd=ROOT)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    failed = 0
    for phase in ("add", "remove"):
        r = report[phase]
        load = r["load"]
        failed += load["failed_or_dropped"]
        steps = "  ".join(f"{n} {s:.0f}s" for n, s in r["steps"])
        print(f"\n{phase}: deployed={r['deployed']}  retrain {r['retrain_seconds']:.0f}s ({steps})")
        print(f"  {r['reason']}")
        if r["paraphrases"]:
            p = r["paraphrases"]
            print(f"  add -> live answers all 3 unseen paraphrases: "
                  f"{p['seconds_from_add']}s" if p["answered"] else f"  paraphrases NOT answered: {p['replies']}")
        print(f"  load: {load['requests']} requests, {load['ok']} ok, {load['non_200']} non-200, "
              f"{load['no_text']} without text, {load['errors']} errors; p50 {load['p50_ms']} ms, "
              f"p95 {load['p95_ms']} ms, max {load['max_ms']} ms")
    print(f"\nwritten: {OUT.relative_to(ROOT)}")
    answered = bool(report["add"]["paraphrases"] and report["add"]["paraphrases"]["answered"])
    return 0 if failed == 0 and answered else 1


if __name__ == "__main__":
    sys.exit(main())

"""The REST channel against the running servers: answers, bad input, the dev
conversation suite with its targets asserted, and the holdout suite measured."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot import evaluation

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, object]:
    request = urllib.request.Request(f"{url}/webhooks/rest/webhook", data=body,
                                     headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode("utf-8") or "null")


def say(url: str, sender: str, text: str) -> str:
    status, messages = post(url, json.dumps({"sender": sender, "message": text}).encode())
    assert status == 200, messages
    return "\n".join(m.get("text", "") for m in messages)


def test_status_is_public_and_api_needs_token(live_url):
    with urllib.request.urlopen(f"{live_url}/status", timeout=5) as resp:
        assert resp.status == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{live_url}/conversations/x/tracker", timeout=5)
    assert err.value.code == 401


def _outward_address() -> str | None:
    """This host's address on its outward interface (no packet is sent), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # TEST-NET-3: routing only
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _run_folder(url: str) -> Path:
    """scripts/serve.sh's folder of the server on `url` (its pids and endpoints.yml)."""
    return ROOT / "build" / f"run-{urlsplit(url).port}"


def test_the_action_server_listens_on_loopback_only(live_url):
    port = int(urlsplit(live_url).port or 0)
    endpoints = (_run_folder(live_url) / "endpoints.yml").read_text(encoding="utf-8")
    actions = int(re.search(r"127\.0\.0\.1:(\d+)/webhook", endpoints).group(1))
    assert _answers("127.0.0.1", actions)
    outward = _outward_address()
    if outward is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    assert _answers(outward, port), "the Rasa server itself should answer on every interface"
    assert not _answers(outward, actions), f"the action server answers on {outward}:{actions}"


def test_the_api_token_is_not_on_the_command_line(live_url):
    pid = (_run_folder(live_url) / "rasa.pid").read_text().strip()
    token = (ROOT / "build" / "api_token").read_text().strip()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    assert "bot.server" in cmdline and token not in cmdline
    request = urllib.request.Request(f"{live_url}/conversations/x/tracker?token={token}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200  # the server was given the token all the same


def test_the_server_runs_without_jax(live_url):
    """bot/nojax.py: TensorFlow's optional JAX import is refused (about 96 MB per replica);
    the server answers all the same."""
    pid = (_run_folder(live_url) / "rasa.pid").read_text().strip()
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert "tensorflow" in maps and "jaxlib" not in maps
    assert "0955-8812005" in say(live_url, "e2e-nojax", "联系电话")


def test_deadline_question(live_url):
    text = say(live_url, "e2e-deadline", "截止日期是什么时候")
    assert "2021年9月24日" in text and "已截止" in text and "依据" in text
    follow = say(live_url, "e2e-deadline", "提交总结材料呢？")
    assert "2021年10月10日" in follow and "2021年9月24日" not in follow


@pytest.mark.parametrize(
    ("text", "must"),
    [
        ("聯繫電話", "0955-8812005"),
        ("联 系 人", "孙浩"),
        ("怎么报名！！！", "kepuri.cn"),
    ],
)
def test_messy_input_is_understood(live_url, text, must):
    assert must in say(live_url, "e2e-messy", text)


@pytest.mark.parametrize(
    ("body", "expected_status"),
    [
        (json.dumps({"sender": "bad-1", "message": ""}).encode(), 200),
        (json.dumps({"sender": "bad-2", "message": "   "}).encode(), 200),
        (json.dumps({"sender": "bad-3", "message": "截止日期" * 2500}).encode(), 200),
        (json.dumps({"sender": "bad-4", "message": "😀😀😀🎉"}).encode(), 200),
        (json.dumps({"sender": "bad-5", "message": "<script>alert(1)</script><img src=x onerror=alert(2)>"}).encode(), 200),
        (json.dumps({"sender": "bad-6", "message": "电话\u0000\u0007\u001b[31m"}).encode(), 200),
        (b"{this is not json", 400),
        (b"[1, 2, 3]", 400),
        (json.dumps({"sender": "bad-7", "message": 42}).encode(), 400),
        (json.dumps({"sender": "bad-8", "message": "/ask_deadline{broken json"}).encode(), 200),
        (json.dumps({"sender": "bad-9", "message": "/no_such_intent"}).encode(), 200),
        (json.dumps({"message": "联系电话"}).encode(), 200),  # no sender: a conversation of its own
        (json.dumps({"sender": "bad-10", "message": "截止日期" * 5000}, ensure_ascii=False).encode(), 200),
        (json.dumps({"sender": "bad-11", "message": "a" * 63000}).encode(), 200),  # just under 64 KB
        (json.dumps({"sender": "bad-12", "message": "a" * 70000}).encode(), 413),
        (json.dumps({"sender": "bad-13", "message": None}).encode(), 400),
        (json.dumps({"sender": "bad-14", "message": ["截止日期"]}).encode(), 400),
        (json.dumps({"sender": "bad-15", "message": {"text": "截止日期"}}).encode(), 400),
        (json.dumps({"sender": 15, "message": "截止日期"}).encode(), 400),
        (b'{"sender": "bad-16", "message": "hi"', 400),
        (b"", 400),
    ],
)
def test_bad_input_gets_polite_reply_or_4xx(live_url, body, expected_status):
    status, messages = post(live_url, body)
    assert status == expected_status
    if status == 200:
        assert messages and all(isinstance(m.get("text"), str) and m["text"] for m in messages)
        assert "<script>" not in json.dumps(messages, ensure_ascii=False)
    else:
        assert "error" in messages
    # The server keeps answering after every bad request.
    assert "0955-8812005" in say(live_url, "after-bad", "联系电话")


def run_set(url: str, name: str) -> dict:
    """Play one set, write results/eval-<set>.json, print its report; the summary."""
    conversations = evaluation.load_set(name)
    results = asyncio.run(evaluation.run_suite(url, conversations)) if conversations else []
    summary = evaluation.summarize(results, name)
    path = evaluation.write_report(summary, ROOT / "results")
    print("\n".join(evaluation.report_lines(summary, show_failures=False)) + f"\n  failures: {path}")
    return summary


# Regression floors of the dev set (measured 2026-12-02 on 3 306 turns: answered 94.1%, refused
# 90.9%, follow-up 87.2%, less a margin for retraining noise). The targets are for the
# holdout, which `make eval` reports; dev holds the old suite and the studied sets A, B, C, D, F, G
# plus the leaked (unstudied) parts of the holdouts.
DEV_FLOORS = {"answered": 0.92, "oos_refused": 0.88, "followup": 0.84}


def test_dev_conversations_do_not_regress(live_url):
    summary = run_set(live_url, "dev")
    assert summary["turns"] >= 300
    failures = "\n".join(f"{f['id']}#{f['turn']} [{f['expect']}/{f['kind']}]: {f['user']} -> {f['reply'][:80]} "
                         f"missing={f['missing']} forbidden={f['forbidden']} recited={f['recited']}"
                         for f in summary["failures"][:30])
    low = {name: summary[name] for name, floor in DEV_FLOORS.items() if (summary[name] or 0) < floor}
    assert not low, (low, failures)


def test_holdout_conversations_are_measured(live_url):
    # Only measured here (figures printed and in results/eval-holdout.json): its targets are the
    # lead's call (`make eval --strict`), and its failures are not studied in a test run.
    summary = run_set(live_url, "holdout")
    assert summary["turns"] > 0, "tests/conversations/holdout/ has no conversations"
    assert summary["http_errors"] == 0, [f for f in summary["failures"] if f["status"] != 200][:5]

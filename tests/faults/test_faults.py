"""`make test-faults`: the cluster of `make run-cluster` under load while one of its parts fails.

One cluster for the module (scripts/cluster.sh on free ports: two replicas behind nginx), on a
PostgreSQL cluster and a redis-server that this module starts itself, so it may restart and stop
them without touching the machine's shared servers. A load of several conversations runs through
nginx during each fault; every one of its requests is kept and judged afterwards:

- the action server of replica A killed: every user gets an answer, "系统繁忙……" with the phone
  of the knowledge base while it is down, never silence; once it is back, A answers again;
- PostgreSQL restarted (stopped for two seconds): the replicas wait for it, every message gets a
  real answer, and every message of the load is an event row afterwards, in order;
- Redis unreachable (the process stopped with SIGSTOP: connections hang, as behind a broken
  network): every request is answered, politely, and the log says which store does not answer;
- replica B killed (last: it stays down): nginx sends every message to A, none fails, and the
  conversations B was holding go on with their context.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.channels import BUSY
from bot.knowledge.loader import load_knowledge
from tests.cluster import Cluster, ClusterStartError, own_cluster

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
PHONE = load_knowledge(ROOT / "knowledge").facts["contact.phone"].short
BUSY_TEXT = BUSY.format(phone=PHONE)
# Conversations of the load: a question, then follow-ups that need its context.
SCRIPTS = [
    [("主场活动哪天", "9月17日"), ("那在哪", "第十一小学")],
    [("科协代表大会哪天开", "9月14日"), ("那在哪", "黄河金岸花园大酒店")],
    [("联系电话多少", PHONE), ("传真呢", "传真")],
    [("教育局牵头哪个行动", "行动"), ("卫健呢", "行动")],
]

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


@dataclass
class Reply:
    sender: str
    text: str
    expected: str
    status: int
    texts: list[str]
    kinds: list[str]
    started: float
    ended: float

    @property
    def answered(self) -> bool:
        return self.status == 200 and bool(self.texts) and all(t.strip() for t in self.texts)

    @property
    def busy(self) -> bool:
        return self.kinds == ["busy"]


def post(url: str, sender: str, text: str, timeout: float = 120) -> tuple[int, list[dict]]:
    body = json.dumps({"sender": sender, "message": text}).encode("utf-8")
    req = urllib.request.Request(f"{url}/webhooks/rest/webhook", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        return err.code, []
    except (urllib.error.URLError, OSError):
        return 0, []  # no answer at all


@dataclass
class Load:
    """`users` threads, each holding the conversations of SCRIPTS one after another."""

    url: str
    users: int = 6
    replies: list[Reply] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _user(self, number: int) -> None:
        conversation = number
        while not self._stop.is_set():
            sender = f"fault-{number}-{uuid.uuid4().hex[:8]}"
            for text, expected in SCRIPTS[conversation % len(SCRIPTS)]:
                started = time.monotonic()
                status, messages = post(self.url, sender, text)
                reply = Reply(sender, text, expected, status, [m.get("text") or "" for m in messages],
                              [m.get("kind") or "" for m in messages], started, time.monotonic())
                with self._lock:
                    self.replies.append(reply)
            conversation += 1

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._user, args=(n,), daemon=True) for n in range(self.users)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(180)

    def wait_for(self, count: int, timeout: float = 120) -> None:
        """Until `count` more replies came in (the load goes on meanwhile)."""
        target = len(self.replies) + count
        deadline = time.monotonic() + timeout
        while len(self.replies) < target and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.replies) >= target, f"the load got only {len(self.replies)} replies"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not (ROOT / "build" / "current_model").exists():
        pytest.fail("no trained model (build/current_model): run 'make train' first")
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        pytest.fail("nginx is missing: run 'make test-deps' (apt-get install nginx)")
    try:
        with own_cluster() as started:
            yield started
    except (ClusterStartError, RuntimeError) as exc:
        pytest.fail(str(exc))


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def start_action_server(cluster: Cluster, replica: int) -> None:
    """The replica's action server again, as scripts/serve.sh starts it; its pid where serve.sh
    keeps it, so `cluster.sh stop` stops it."""
    rasa_port, actions_port = cluster.replica_ports[replica], cluster.actions_ports[replica]
    run = ROOT / "build" / f"run-{rasa_port}"
    command = (f'set -a; . "{cluster.folder / "cluster.env"}"; set +a; '
               f'exec {PYTHON} -m rasa_sdk --actions actions --port {actions_port}')
    with open(run / "actions.log", "ab") as log:
        process = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env={**cluster.env, "SANIC_HOST": "127.0.0.1"},
                                   stdout=log, stderr=subprocess.STDOUT)
    (run / "actions.pid").write_text(f"{process.pid}\n")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{actions_port}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail("the action server did not come back")


def assert_every_request_answered(replies: list[Reply]) -> None:
    unanswered = [r for r in replies if not r.answered]
    assert not unanswered, f"{len(unanswered)} of {len(replies)} unanswered: {unanswered[:3]}"


# -- the action server ----------------------------------------------------------

def test_an_action_server_killed_mid_load_means_busy_then_answers(cluster: Cluster) -> None:
    a = cluster.a
    assert PHONE in "".join(post(a, "fault-warm", "联系电话")[1][0]["text"])
    with Load(cluster.front) as load:
        load.wait_for(12)
        pid = cluster.pid(cluster.replica_ports[0], "actions")
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        status, messages = post(a, f"fault-a-{uuid.uuid4().hex[:6]}", "联系电话")
        load.wait_for(24)
        start_action_server(cluster, 0)
        load.wait_for(12)
    assert (status, [m["text"] for m in messages], [m.get("kind") for m in messages]) == (200, [BUSY_TEXT], ["busy"])
    assert f"系统繁忙，请稍后再试，或拨打{PHONE}。" == BUSY_TEXT
    assert_every_request_answered(load.replies)
    busy = [r for r in load.replies if r.busy]
    assert busy and all(r.texts == [BUSY_TEXT] for r in busy)
    status, messages = post(a, f"fault-a-{uuid.uuid4().hex[:6]}", "联系电话")
    assert status == 200 and PHONE in messages[0]["text"] and messages[0]["kind"] == "answer", messages


# -- PostgreSQL -------------------------------------------------------------------

def user_texts(cluster: Cluster, senders: set[str]) -> dict[str, list[str]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(cluster.db_url, future=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT sender_id, data FROM events WHERE type_name = 'user' "
                                     "AND sender_id = ANY(:s) ORDER BY id"), {"s": list(senders)}).all()
    finally:
        engine.dispose()
    found: dict[str, list[str]] = {}
    for sender, data in rows:
        found.setdefault(sender, []).append(json.loads(data)["text"])
    return found


def test_a_postgresql_restart_is_ridden_out_and_no_event_is_lost(cluster: Cluster) -> None:
    postgres = cluster.postgres
    assert postgres is not None
    with Load(cluster.front) as load:
        load.wait_for(12)
        postgres.stop()
        time.sleep(2)  # the outage: messages arrive while nothing listens on PostgreSQL's port
        postgres.start()
        load.wait_for(24)
    assert_every_request_answered(load.replies)
    assert [r for r in load.replies if r.busy] == []
    sent: dict[str, list[str]] = {}
    for reply in load.replies:
        sent.setdefault(reply.sender, []).append(reply.text)
    assert user_texts(cluster, set(sent)) == sent
    stored = "\n".join(cluster.log(port).read_text(encoding="utf-8") for port in cluster.replica_ports)
    assert "tracker store: the database does not answer" in stored


# -- Redis --------------------------------------------------------------------------

def test_an_unreachable_redis_is_logged_and_answered_politely(cluster: Cluster) -> None:
    redis = cluster.redis
    assert redis.process is not None
    before = {port: cluster.log(port).stat().st_size for port in cluster.replica_ports}
    with Load(cluster.front, users=4) as load:
        load.wait_for(8)
        os.kill(redis.process.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            load.wait_for(12)
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)
            continued_at = time.monotonic()
        load.wait_for(12)
    assert_every_request_answered(load.replies)
    during = [r for r in load.replies if r.started > stopped_at and r.ended < continued_at]
    assert during and all(r.texts == [BUSY_TEXT] for r in during), during[:3]
    assert not any(r.busy for r in load.replies[-4:])  # once Redis answers, so does the bot
    logged = "".join(cluster.log(port).read_text(encoding="utf-8")[size:] for port, size in before.items())
    assert f"lock store: Redis 127.0.0.1:{redis.port} does not answer" in logged


# -- a replica (last: replica B stays down) --------------------------------------------

def test_a_replica_killed_mid_load_is_routed_around_and_context_is_kept(cluster: Cluster) -> None:
    from tests.e2e.test_cluster import CONGRESS_VENUE, say

    held = f"fault-held-{uuid.uuid4().hex[:6]}"
    assert "9月14日" in say(cluster.b, held, "科协代表大会哪天开")
    with Load(cluster.front) as load:
        load.wait_for(12)
        pid = cluster.pid(cluster.replica_ports[1])
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        killed_at = time.monotonic()
        load.wait_for(30)
    assert_every_request_answered(load.replies)
    assert not any(r.busy for r in load.replies)
    assert any(r.started > killed_at for r in load.replies)
    followups = [r for r in load.replies if r.text != SCRIPTS[0][0][0] and r.expected in ("第十一小学", "黄河金岸花园大酒店")]
    assert followups and all(r.expected in "".join(r.texts) for r in followups)
    assert CONGRESS_VENUE in say(cluster.front, held, "那在哪")  # B's conversation goes on at A

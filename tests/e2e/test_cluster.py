"""`make run-cluster` (scripts/cluster.sh): two replicas behind nginx, conversations and the
knowledge database in PostgreSQL, locks and the WeChat channel's state in Redis.

The cluster is started once for this module on free ports, with a fresh PostgreSQL database
(dropped afterwards) and a redis-server of the test's own with a key prefix of this run, so
neither `make run-cluster`'s database nor the shared Redis on 6379 is touched. The replicas are
started side by side (about 40 s on two cores). The test that kills replica A runs last.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import WECHAT_TOKEN, Cluster, cluster_env, cluster_sh, free_ports
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
# The PostgreSQL server the cluster's database is created on (python-svc machines run one here).
PG_SERVER = os.environ.get("KEPU_TEST_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not (ROOT / "build" / "current_model").exists():
        pytest.fail("no trained model (build/current_model): run 'make train' first")
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        pytest.fail("nginx is missing: run 'make test-deps' (apt-get install nginx)")
    run = uuid.uuid4().hex[:10]
    redis = RedisServer(tmp_path_factory.mktemp("cluster-redis")).start()
    ports = free_ports(5)
    db_url = f"{PG_SERVER}/kepu_e2e_{run}"
    redis_url = f"redis://127.0.0.1:{redis.port}/3"
    env = cluster_env(ports, db_url, redis_url, f"kepue2e{run}")
    made = Cluster(ports[0], (ports[1], ports[2]), db_url, redis, redis_url, f"kepue2e{run}", env)
    start = time.monotonic()
    started = cluster_sh("start", env)
    made.started_in = time.monotonic() - start
    print(f"\ncluster started in {made.started_in:.1f}s:\n{started.stdout}{started.stderr}")
    try:
        if started.returncode != 0:
            pytest.fail(f"scripts/cluster.sh start failed:\n{started.stdout}\n{started.stderr}")
        made.logged("", timeout=0)  # the readiness checks are not the tests' requests
        yield made
    finally:
        cluster_sh("stop", env, timeout=120)
        subprocess.run([PYTHON, str(ROOT / "scripts" / "cluster_stores.py"), "drop", "--db", db_url],
                       cwd=ROOT, check=False, timeout=60)
        redis.stop()
        shutil.rmtree(made.folder, ignore_errors=True)
        for port in ports[1:3]:
            shutil.rmtree(ROOT / "build" / f"run-{port}", ignore_errors=True)


# -- HTTP ---------------------------------------------------------------------

def request(url: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def say(url: str, sender: str, text: str) -> str:
    status, raw = request(f"{url}/webhooks/rest/webhook",
                          json.dumps({"sender": sender, "message": text}).encode("utf-8"))
    assert status == 200, (url, status, raw)
    return "\n".join(m.get("text") or "" for m in json.loads(raw))


def new_sender() -> str:
    return f"e2e-cluster-{uuid.uuid4().hex[:10]}"


REST = "POST /webhooks/rest/"


# -- the cluster --------------------------------------------------------------

def test_status_answers_through_nginx_round_robin(cluster: Cluster) -> None:
    assert cluster.started_in < 300
    for url in (cluster.a, cluster.b):
        assert request(f"{url}/status")[0] == 200
    cluster.logged("", timeout=0)
    answers = [request(f"{cluster.front}/status") for _ in range(4)]
    assert [status for status, _ in answers] == [200] * 4, answers
    assert json.loads(answers[0][1]) == {"status": "ready"}
    upstreams = cluster.logged("GET /status", 4)
    assert sorted(upstreams) == sorted(2 * [cluster.a.removeprefix("http://"), cluster.b.removeprefix("http://")])


def test_the_front_offers_no_rasa_api_and_logs_no_query_strings(cluster: Cluster) -> None:
    token = (ROOT / "build" / "api_token").read_text().strip()
    assert request(f"{cluster.a}/conversations/x/tracker?token={token}")[0] == 200  # the replica's API
    for path in ("/conversations/x/tracker", "/model", "/version", "/domain"):
        assert request(f"{cluster.front}{path}?token={token}")[0] == 404, path
    request(f"{cluster.front}/webhooks/wechat/webhook?signature=e2esecretsig&timestamp=1&nonce=e2enonce")
    assert cluster.logged("GET /webhooks/wechat/webhook", 1)
    log = (cluster.folder / "nginx-access.log").read_text(encoding="utf-8")
    assert "e2esecretsig" not in log and token not in log


CONGRESS_VENUE, MAIN_VENUE = "黄河金岸花园大酒店", "第十一小学"


def test_a_followup_on_the_other_replica_keeps_its_context(cluster: Cluster) -> None:
    congress, main = new_sender(), new_sender()
    assert "9月14日" in say(cluster.a, congress, "科协代表大会哪天开")
    assert "9月17日" in say(cluster.a, main, "主场活动哪天")
    where_congress = say(cluster.b, congress, "那在哪")
    where_main = say(cluster.b, main, "那在哪")
    assert CONGRESS_VENUE in where_congress and MAIN_VENUE not in where_congress, where_congress
    assert MAIN_VENUE in where_main and CONGRESS_VENUE not in where_main, where_main
    # The control: without the first turn, "那在哪" is not about the congress.
    fresh = say(cluster.b, new_sender(), "那在哪")
    assert not (CONGRESS_VENUE in fresh and MAIN_VENUE not in fresh), fresh


def test_a_followup_through_nginx_lands_on_the_other_replica(cluster: Cluster) -> None:
    sender = new_sender()
    cluster.logged("", timeout=0)
    assert "9月14日" in say(cluster.front, sender, "科协代表大会哪天开")
    where = say(cluster.front, sender, "那在哪")
    replicas = cluster.logged(REST, 2)
    assert len(replicas) == 2 and replicas[0] != replicas[1], f"nginx sent both turns to {replicas}"
    assert CONGRESS_VENUE in where and MAIN_VENUE not in where, where


def _engine(cluster: Cluster):  # noqa: ANN202
    from sqlalchemy import create_engine

    return create_engine(cluster.db_url, future=True)


def test_the_conversations_are_rows_in_postgresql(cluster: Cluster) -> None:
    from sqlalchemy import text

    sender = new_sender()
    say(cluster.a, sender, "截止日期是什么时候")
    say(cluster.b, sender, "提交总结材料呢？")
    engine = _engine(cluster)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT type_name, action_name, data FROM events WHERE sender_id = :s "
                                     "ORDER BY id"), {"s": sender}).all()
    finally:
        engine.dispose()
    said = [json.loads(data)["text"] for kind, _, data in rows if kind == "user"]
    assert said == ["截止日期是什么时候", "提交总结材料呢？"]
    assert [action for kind, action, _ in rows if kind == "action"].count("action_answer") == 2
    assert any(kind == "bot" and "10月10日" in json.loads(data)["text"] for kind, _, data in rows)


def test_the_knowledge_database_is_postgresql_for_every_replica(cluster: Cluster) -> None:
    from sqlalchemy import text

    question, marker = "这个通知是公开的吗", "【E2E集群】"
    assert marker not in say(cluster.a, new_sender(), question)
    engine = _engine(cluster)
    try:
        with engine.begin() as conn:  # what a rebuild by another machine would do
            conn.execute(text("UPDATE kb_faqs SET answer = :m || answer WHERE id = 'public'"), {"m": marker})
            conn.execute(text("UPDATE kb_build SET checksum = 'e2e-edited'"))
    finally:
        engine.dispose()
    deadline = time.monotonic() + 20  # each action server checks the build every 5 s
    pending = {cluster.a, cluster.b}
    while pending and time.monotonic() < deadline:
        pending = {url for url in pending if marker not in say(url, new_sender(), question)}
        time.sleep(0.5)
    assert not pending, f"still answering from another knowledge database: {pending}"


def test_hot_swap_and_rollback_reach_every_replica(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """KEPU_LIVE_URLS of the cluster (its env file, the replicas' own environment) names both
    replicas, and the hot swap of `bot retrain` / `bot rollback` loads the model on each."""
    from bot.staff import live, retrain

    shown = cluster_sh("env", cluster.env, timeout=30)
    settings = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
    urls = [cluster.a, cluster.b]
    assert settings["KEPU_LIVE_URLS"].split() == urls
    environ = (Path("/proc") / str(cluster.pid(cluster.replica_ports[0])) / "environ").read_bytes()
    assert f"KEPU_LIVE_URLS={' '.join(urls)}".encode() in environ.split(b"\0")
    monkeypatch.setenv("KEPU_LIVE_URLS", settings["KEPU_LIVE_URLS"])
    swapped, skipped = retrain._swap(retrain.current_model())
    assert (swapped, skipped) == (urls, [])
    for url in urls:
        assert live.model_name(url).endswith(Path(retrain.current_model()).name)
        assert "0955-8812005" in say(url, new_sender(), "联系电话")


# -- WeChat -------------------------------------------------------------------

def _signed(nonce: str) -> dict[str, str]:
    from wechatpy.utils import WeChatSigner

    timestamp = str(int(time.time()))
    signer = WeChatSigner()
    signer.add_data(WECHAT_TOKEN, timestamp, nonce)
    return {"signature": signer.signature, "timestamp": timestamp, "nonce": nonce}


def _wechat(url: str, params: dict[str, str], xml: str | None = None) -> tuple[int, str]:
    query = urllib.parse.urlencode(params)
    req = urllib.request.Request(f"{url}/webhooks/wechat/webhook?{query}", method="GET" if xml is None else "POST",
                                 data=None if xml is None else xml.encode("utf-8"),
                                 headers={"Content-Type": "text/xml"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def _text_message(openid: str, msg_id: int, content: str) -> str:
    return (f"<xml><ToUserName><![CDATA[gh_e2e]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")


def _content(reply: str) -> str:
    """The text of a passive XML reply ('' for "success" or anything else)."""
    found = re.search(r"<Content><!\[CDATA\[(.*?)\]\]></Content>", reply, re.S)
    return found.group(1) if found else ""


def _new_signature() -> dict[str, str]:
    return _signed(f"e2e{uuid.uuid4().hex[:8]}")


def test_a_wechat_signature_used_on_one_replica_is_refused_on_the_other(cluster: Cluster) -> None:
    """The nonce store is Redis: a URL check on A claims its signature; the same signature on a
    message to B is a replay (with a nonce store per process, B would answer it)."""
    import redis

    check = _new_signature()
    assert _wechat(cluster.a, {**check, "echostr": "hello"}) == (200, "hello")
    replayed = _wechat(cluster.b, check, _text_message(f"o{uuid.uuid4().hex[:20]}", 1, "联系电话"))
    assert replayed[0] == 403, replayed
    assert redis.Redis.from_url(cluster.redis_url).keys(f"{cluster.prefix}:wechat:nonce:*")


def test_a_wechat_retry_on_the_other_replica_is_answered_once(cluster: Cluster) -> None:
    """The per-user state is Redis: B answers a message; WeChat's retry of it (same MsgId, a new
    signature) on A gets B's passive reply again, and Rasa sees the message once."""
    import redis
    from sqlalchemy import text

    openid, msg_id = f"o{uuid.uuid4().hex[:20]}", int(time.time() * 1000)
    message = _text_message(openid, msg_id, "联系电话")
    status, first = _wechat(cluster.b, _new_signature(), message)
    assert status == 200 and "0955-8812005" in _content(first), first
    status, retry = _wechat(cluster.a, _new_signature(), message)
    assert status == 200 and _content(retry) == _content(first), retry
    assert redis.Redis.from_url(cluster.redis_url).keys(f"{cluster.prefix}:wechat:state:msg:*")
    engine = _engine(cluster)
    try:
        with engine.connect() as conn:
            users = conn.execute(text("SELECT count(*) FROM events WHERE sender_id = :s AND type_name = 'user'"),
                                 {"s": f"wx-{openid}"}).scalar_one()
    finally:
        engine.dispose()
    assert users == 1


# -- failure (last: replica A stays down) -----------------------------------------

def test_nginx_answers_through_b_when_a_is_killed(cluster: Cluster) -> None:
    sender = new_sender()
    assert "9月17日" in say(cluster.a, sender, "主场活动哪天")
    pid = cluster.pid(cluster.replica_ports[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _listening(cluster.a)
    cluster.logged("", timeout=0)
    statuses = [request(f"{cluster.front}/status", timeout=10)[0] for _ in range(6)]
    assert statuses == [200] * 6
    assert cluster.logged("GET /status", 6) == 6 * [cluster.b.removeprefix("http://")]
    cluster.logged("", timeout=0)
    where = say(cluster.front, sender, "那在哪")  # the conversation A began goes on
    assert MAIN_VENUE in where and CONGRESS_VENUE not in where, where
    assert "市科协" in say(cluster.front, sender, "谁负责")
    assert cluster.logged(REST, 2) == 2 * [cluster.b.removeprefix("http://")]


def _listening(url: str) -> bool:
    import socket

    parts = urllib.parse.urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0

"""The bot's HTTP surface against hostile and clumsy requests: the project's app as
`rasa run --cors "*"` mounts it (tests/servers.py), served on a free port, driven with raw HTTP.

Hostile JSON bodies and a malformed Content-Length get a 400 with a Chinese message on every
route, never a 500; REST senders cannot reach WeChat conversations; replies say `nosniff`; the
admin page answers no CORS; its lock-out is keyed per (address, user), forwarded addresses
trusted only from configured proxies; signature query strings never reach a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest

from bot.channels.senders import WECHAT_PREFIX
from bot.web.admin_auth import ADDRESS_MAX_FAILURES, THROTTLE_SECONDS
from tests.channels.conftest import OPENID, FakeWeChatApi, WeChatHarness, text_xml, wait_until
from tests.servers import SanicServer, build_project

REST = "/webhooks/rest/webhook"
FEEDBACK = "/widget/feedback"
RETRAIN_API = "/admin/api/retrain"
CJK = re.compile(r"[\u4e00-\u9fff]")


def nested_metadata(depth: int) -> bytes:
    inner = '{"a":' * depth + "1" + "}" * depth
    return f'{{"sender": "u-deep", "message": "截止日期", "metadata": {inner}}}'.encode()


HOSTILE_BODIES = {
    "60000 open brackets": b"[" * 60000,
    "a 5000-digit integer": b"9" * 5000,
    "a 5000-digit integer in an object": b'{"sender": "u-int", "message": "hi", "n": ' + b"9" * 5000 + b"}",
    "metadata nested 10000 deep": nested_metadata(10000),
    "metadata nested 100 deep": nested_metadata(100),
    "a lone surrogate in the message": b'{"sender": "u-sur", "message": "\\ud800"}',
    "a lone low surrogate in the sender": b'{"sender": "u-\\udc00", "message": "hi"}',
    "a lone surrogate in a metadata key": b'{"sender": "u-sur", "message": "hi", "metadata": {"\\udfff": 1}}',
    "a reversed surrogate pair": b'{"sender": "u-sur", "message": "\\ude00\\ud83d"}',
}


async def request(base: str, method: str, path: str, body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.request(
            method, base + path, data=body, headers=headers or {}, allow_redirects=False) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.text()


def error_of(text: str) -> str:
    return json.loads(text)["error"]


async def admin_session(project: Any) -> dict[str, str]:
    """Headers of a logged-in staff member's API call (session cookie, CSRF token, same origin)."""
    base, built = project
    built.auth.create_user("zhangsan", "正确的密码-correct-horse")
    token, session = built.auth.create_session("zhangsan")
    return {"Cookie": f"kepu_admin_session={token}", "X-CSRF-Token": session.csrf, "Origin": base,
            "Content-Type": "application/json"}


# -- hostile JSON bodies ----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
async def test_hostile_json_is_400_in_chinese_on_every_json_route(project: Any, name: str) -> None:
    base, built = project
    staff = await admin_session(project)
    for path, headers in ((REST, {}), (FEEDBACK, {}), (RETRAIN_API, staff)):
        status, _, text = await request(base, "POST", path, HOSTILE_BODIES[name],
                                        {"Content-Type": "application/json", **headers})
        assert status == 400, (path, status, text[:200])
        assert CJK.search(error_of(text)), (path, text)
    assert built.rasa.calls == []
    assert (await request(base, "GET", "/webhooks/rest/"))[0] == 200  # and the server still answers


async def test_hostile_json_elsewhere_is_never_a_500(project: Any) -> None:
    base, _ = project
    routes = [("POST", "/widget/session"), ("POST", "/admin/login"), ("POST", "/admin/faq/new"),
              ("POST", "/admin/logout"), ("POST", "/admin/rollback"), ("POST", "/webhooks/wechat/webhook"),
              ("POST", "/admin/retrain"), ("POST", "/admin/faq/x/delete")]
    for body in HOSTILE_BODIES.values():
        for method, path in routes:
            status, _, text = await request(base, method, path, body, {"Content-Type": "application/json"})
            assert status < 500, (path, status, text[:200])


async def test_an_escaped_surrogate_pair_is_one_character_and_reaches_the_bot(project: Any) -> None:
    base, built = project
    body = b'{"sender": "u-emoji", "message": "\\u622a\\u6b62\\ud83d\\ude00"}'  # "截止" and an emoji
    status, _, text = await request(base, "POST", REST, body, {"Content-Type": "application/json"})
    assert status == 200, text
    assert built.rasa.texts == ["截止\U0001f600"]


async def test_deep_but_reasonable_metadata_still_reaches_the_bot(project: Any) -> None:
    base, built = project
    status, _, text = await request(base, "POST", REST, nested_metadata(20), {"Content-Type": "application/json"})
    assert status == 200, text
    assert built.rasa.texts == ["截止日期"]


# -- malformed Content-Length -------------------------------------------------------------------

async def raw_request(base: str, head: str) -> tuple[int, str]:
    """Send `head` (request line and headers, no body) on a new connection; (status, body)."""
    parts = urlsplit(base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(head.encode("latin-1") + b"\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)  # the server closes after answering
    writer.close()
    status_line, _, rest = raw.decode("utf-8", "replace").partition("\r\n")
    return int(status_line.split()[1]), rest.partition("\r\n\r\n")[2]


def every_route(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, with each path parameter filled in."""
    routes = []
    for route in app.router.routes:
        path = "/" + re.sub(r"<[^>]+>", "x", route.path)
        routes += [(method, path) for method in sorted(route.methods)]
    return routes


async def test_malformed_content_length_is_400_on_every_route(project: Any) -> None:
    base, built = project
    routes = every_route(built.app) + [("POST", "/no/such/route"), ("GET", "/status")]
    assert len(routes) > 20 and ("POST", REST) in routes
    for method, path in routes:
        status, body = await raw_request(base, f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n")
        assert status == 400, (method, path, status, body[:200])
        assert "Content-Length" in error_of(body) and CJK.search(error_of(body))


@pytest.mark.parametrize("value", ["", "-1", "+5", "1_0", "0x10", "1e3", "5, 6", " 7 8", "9" * 30])
async def test_every_malformed_content_length_value_is_400(project: Any, value: str) -> None:
    base, built = project
    status, body = await raw_request(base, f"POST {REST} HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n")
    assert status == 400, (value, body[:200])
    status, body = await raw_request(base, f"POST {REST} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                           "Content-Length: 3\r\n")
    assert status == 400, body[:200]
    assert built.rasa.calls == []
    assert (await request(base, "POST", REST, b'{"message": "hi"}'))[0] == 200  # a good request still works


# -- sender namespaces -------------------------------------------------------------------------------

@pytest.mark.parametrize("sender", [f"{WECHAT_PREFIX}{OPENID}", f"WX-{OPENID}"])
async def test_rest_cannot_write_into_a_wechat_conversation(project: Any, sender: str) -> None:
    base, built = project
    body = json.dumps({"sender": sender, "message": "我刚才问了什么"}).encode()
    status, _, text = await request(base, "POST", REST, body)
    assert status == 400 and "wx-" in error_of(text) and CJK.search(error_of(text))
    assert built.rasa.calls == []


async def test_requests_without_sender_get_a_conversation_each(project: Any) -> None:
    base, built = project
    answers = []
    for _ in range(2):
        status, _, text = await request(base, "POST", REST, json.dumps({"message": "截止日期"}).encode())
        assert status == 200
        answers.append(json.loads(text)[0]["recipient_id"])
    assert answers[0] != answers[1] and "default" not in answers
    assert [call.sender_id for call in built.rasa.calls] == answers
    assert all(uuid.UUID(sender) for sender in answers)


async def test_the_widgets_session_ids_still_work(project: Any) -> None:
    base, built = project
    _, _, text = await request(base, "POST", "/widget/session")
    session_id = json.loads(text)["session_id"]
    body = json.dumps({"sender": session_id, "message": "截止日期"}).encode()  # what widget.js sends
    status, _, text = await request(base, "POST", REST, body)
    assert status == 200 and json.loads(text)[0]["recipient_id"] == session_id
    assert built.rasa.calls[0].sender_id == session_id


# -- headers and CORS -------------------------------------------------------------------------------

async def test_rest_answers_say_nosniff(project: Any) -> None:
    base, _ = project
    for body in (json.dumps({"sender": "u-1", "message": "截止日期"}).encode(), b"[1]"):
        status, headers, _ = await request(base, "POST", REST, body)
        assert status in (200, 400) and headers["x-content-type-options"] == "nosniff"


PREFLIGHT = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "x-csrf-token, content-type"}


@pytest.mark.parametrize("path", [RETRAIN_API, "/admin/login", "/admin/faq", "/admin"])
async def test_admin_answers_no_cors_preflight_included(project: Any, path: str) -> None:
    base, _ = project
    for method, headers in (("OPTIONS", PREFLIGHT), ("GET", {"Origin": "https://evil.example"}),
                            ("POST", {"Origin": "https://evil.example"})):
        status, answer, _ = await request(base, method, path, headers=headers)
        assert status < 500
        assert not [h for h in answer if h.startswith("access-control-")], (method, path, answer)


async def test_the_widget_api_keeps_its_cors(project: Any) -> None:
    """The portal embeds the widget from another origin: the REST channel must keep Rasa's CORS."""
    base, _ = project
    _, headers, _ = await request(base, "OPTIONS", REST, headers=PREFLIGHT)
    assert headers.get("access-control-allow-origin") == "https://evil.example"


# -- admin lock-out ------------------------------------------------------------------------------------

PASSWORD = "正确的密码-correct-horse"


async def login(base: str, name: str, password: str, source: str = "127.0.0.1",
                forwarded_for: str | None = None) -> tuple[int, str]:
    """Log in through the form like a browser from `source` (a loopback address); (status, page)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    extra = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(base + "/admin/login", headers=extra) as resp:
            token = re.search(r'name="login_token" value="([^"]+)"', await resp.text()).group(1)
        form = {"login_token": token, "name": name, "password": password, "next": "/admin/faq"}
        async with session.post(base + "/admin/login", data=form, allow_redirects=False,
                                headers={"Origin": base, **extra}) as resp:
            return resp.status, await resp.text()


async def test_a_password_guesser_locks_out_only_themselves(project: Any) -> None:
    base, built = project
    built.auth.create_user("zhangsan", PASSWORD)
    for attempt in range(5):
        status, page = await login(base, "zhangsan", f"guess-{attempt}", source="127.0.0.2")
    assert status == 429 and "已被锁定" in page
    assert (await login(base, "zhangsan", PASSWORD, source="127.0.0.2"))[0] == 429
    status, _ = await login(base, "zhangsan", PASSWORD, source="127.0.0.1")  # the staff member's own address
    assert status == 303


async def test_an_office_behind_one_address_is_slowed_down_not_locked_out(project: Any) -> None:
    base, built = project
    built.auth.create_user("zhangsan", PASSWORD)
    for attempt in range(ADDRESS_MAX_FAILURES):  # colleagues' typos and a guesser, all behind one NAT address
        assert (await login(base, f"colleague{attempt}", "wrong-password", source="127.0.0.2"))[0] == 401
    status, page = await login(base, "zhangsan", PASSWORD, source="127.0.0.2")
    assert status == 429 and "秒后再试" in page and "已被锁定" not in page
    await asyncio.sleep(THROTTLE_SECONDS + 0.1)  # a short wait, not a 15-minute lock
    assert (await login(base, "zhangsan", PASSWORD, source="127.0.0.2"))[0] == 303


def forwarded_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "bot.web.proxies" and r.levelno == logging.WARNING and "X-Forwarded-For" in r.getMessage()]


async def test_forwarded_for_is_ignored_from_untrusted_peers(project: Any, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    base, built = project
    caplog.set_level(logging.WARNING, logger="bot.web.proxies")
    monkeypatch.setenv("KEPU_TRUSTED_PROXIES", "127.0.0.3")
    built.auth.create_user("zhangsan", PASSWORD)
    for attempt in range(5):  # a new address in the header every time does not help
        await login(base, "zhangsan", "wrong-password", source="127.0.0.2", forwarded_for=f"198.51.100.{attempt}")
    assert (await login(base, "zhangsan", PASSWORD, source="127.0.0.2", forwarded_for="198.51.100.99"))[0] == 429
    warnings = forwarded_warnings(caplog)
    assert len(warnings) == 6 and all("127.0.0.2" in w and "KEPU_TRUSTED_PROXIES" in w for w in warnings)


async def test_behind_a_trusted_proxy_each_client_is_keyed_by_its_own_address(
        project: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    base, built = project
    caplog.set_level(logging.WARNING, logger="bot.web.proxies")
    monkeypatch.setenv("KEPU_TRUSTED_PROXIES", "127.0.0.3, 10.0.0.0/8")
    built.auth.create_user("zhangsan", PASSWORD)
    for _ in range(5):  # nginx appends the client; a client's own entry on the left is ignored
        await login(base, "zhangsan", "wrong-password", source="127.0.0.3", forwarded_for="1.2.3.4, 198.51.100.7")
    assert (await login(base, "zhangsan", PASSWORD, source="127.0.0.3", forwarded_for="198.51.100.7"))[0] == 429
    status, _ = await login(base, "zhangsan", PASSWORD, source="127.0.0.3", forwarded_for="198.51.100.8, 10.0.0.5")
    assert status == 303
    assert built.auth.locked_for("zhangsan", "198.51.100.7") > 0
    assert built.auth.locked_for("zhangsan", "127.0.0.3") == 0  # the proxy itself is never locked
    assert forwarded_warnings(caplog) == []  # forwarded by a trusted proxy: no warning


# -- WeChat in the project's app ---------------------------------------------------------------------

async def test_a_slow_wechat_answer_reaches_the_user_through_the_api_server_the_test_started(project: Any) -> None:
    base, built = project
    built.rasa.delay = 1.5  # slower than passive_timeout (1 s): "success" now, the answer through the API
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:16]
    params = {"signature": WeChatHarness.sign(timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
              "openid": OPENID}
    status, _, text = await request(base, "POST", "/webhooks/wechat/webhook?" + urlencode(params),
                                    text_xml("截止日期是什么时候").encode())
    assert (status, text) == (200, "success")
    assert await wait_until(lambda: built.api.delivered == ["您问的是：截止日期是什么时候"], timeout=10)
    assert built.api.accepted[0]["body"]["touser"] == OPENID and built.api.token_calls


# -- logs -----------------------------------------------------------------------------------------------

async def test_signature_query_strings_never_reach_the_logs(kb: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    db_url = f"sqlite:///{tmp_path / 'logs.db'}"
    monkeypatch.setenv("KEPU_DB_URL", db_url)
    api = FakeWeChatApi()
    await api.start()
    built = build_project(kb, db_url, api)

    async def broken(request: Any) -> Any:
        raise RuntimeError("a handler that fails, so Sanic's error log prints the URI")

    built.app.add_route(broken, "/webhooks/broken", methods=["GET"], name="test_broken")
    server = await SanicServer(built.app, access_log=True).start()
    caplog.set_level(logging.INFO)
    query = "signature=SIGSECRET1&timestamp=1700000000&nonce=NONCESECRET2&msg_signature=MSGSECRET3&openid=o1"
    try:
        assert (await request(server.base, "GET", f"/webhooks/wechat/webhook?{query}&echostr=x"))[0] == 403
        assert (await request(server.base, "GET", f"/webhooks/broken?{query}"))[0] == 500
    finally:
        await server.stop()
        await api.stop()
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'request', '')}" for r in caplog.records)
    assert "signature=[redacted]" in logged and "Exception occurred while handling uri" in logged
    for secret in ("SIGSECRET1", "NONCESECRET2", "MSGSECRET3", "1700000000"):
        assert secret not in logged

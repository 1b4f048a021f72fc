"""Property-based tests of request parsing (hypothesis): whatever a client sends to the REST or the
WeChat webhook -- any bytes, any JSON shape, pathological nesting and numbers, malformed headers,
well-signed or forged WeChat requests in all three modes with arbitrary XML inside -- the answer is
never a 500 and the server keeps answering.

The project's whole app (tests/servers.py) runs in a background thread on a free port; hypothesis
drives it over plain HTTP. Bounded: a fixed number of examples and a per-example deadline keep the
module well under a minute.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import xmltodict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wechatpy.crypto import WeChatCrypto

from tests.channels.conftest import ACCOUNT, AES_KEY, APP_ID, OPENID, TOKEN, FakeWeChatApi, WeChatHarness, wx_xml
from tests.servers import BackgroundLoop, ThreadedServer, build_project

REST = "/webhooks/rest/webhook"
WECHAT = "/webhooks/wechat/webhook"
BOUNDED = settings(max_examples=120, deadline=timedelta(seconds=3), database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def server(kb: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    db_url = f"sqlite:///{Path(tmp_path_factory.mktemp('properties')) / 'project.db'}"
    background, api = BackgroundLoop(), FakeWeChatApi()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KEPU_DB_URL", db_url)
        background.run(api.start())
        built = build_project(kb, db_url, api)
        running = ThreadedServer(built.app, background)
        try:
            running.start()
            yield running.base, built
        finally:
            running.stop()
            background.run(api.stop())
            background.close()


def send(base: str, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def assert_still_answering(base: str) -> None:
    assert send(base, "GET", "/webhooks/rest/")[0] == 200
    status, body = send(base, "POST", REST, json.dumps({"sender": "u-alive", "message": "你好"}).encode())
    assert status == 200 and json.loads(body)[0]["text"] == "您问的是：你好"


# -- strategies ------------------------------------------------------------------------------

json_leaves = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30))
json_values = st.recursive(json_leaves, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=25)
senders = st.one_of(st.text(max_size=140), json_values,
                    st.sampled_from(["u-1", f"wx-{OPENID}", "WX-abc", "default", "", "a" * 129]))
rest_objects = st.fixed_dictionaries({}, optional={
    "sender": senders, "message": st.one_of(st.text(max_size=200), json_values), "metadata": json_values,
})


def _deep_metadata(depth: int) -> bytes:
    return ('{"sender": "u-deep", "message": "m", "metadata": ' + '{"a":' * depth + "1" + "}" * depth + "}").encode()


pathological = st.one_of(
    st.sampled_from([b"[" * 60000, b"9" * 5000, _deep_metadata(10000)]),  # the bodies of issue 9
    st.integers(1, 5000).map(lambda n: b"[" * n),
    st.integers(1, 3000).map(_deep_metadata),
    st.integers(30, 6000).map(lambda n: b'{"message": "m", "n": ' + b"7" * n + b"}"),
    st.sampled_from([b'{"message": NaN}', b'{"message": "m", "x": 1e999}', b'{"message": "\\ud800"}']),
)
rest_bodies = st.one_of(st.binary(max_size=600), rest_objects.map(lambda o: json.dumps(o).encode()), pathological)
content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "application/json; charset=gbk"])
bad_lengths = st.sampled_from(["abc", "-1", "+5", "1_0", "", "0x10", "5, 6", "1" * 25])


@BOUNDED
@given(body=rest_bodies, content_type=content_types)
def test_rest_parsing_never_fails_with_a_500(server: tuple[str, Any], body: bytes, content_type: str) -> None:
    base, _ = server
    status, answer = send(base, "POST", REST, body, {"Content-Type": content_type})
    assert status < 500, (status, answer[:300])
    if status in (400, 413):
        assert json.loads(answer)["error"]
    else:
        assert status == 200 and isinstance(json.loads(answer), list)
    assert_still_answering(base)


@BOUNDED
@given(path=st.sampled_from([REST, WECHAT, "/widget/feedback", "/admin/api/retrain", "/admin/login"]),
       length=bad_lengths, method=st.sampled_from(["POST", "GET", "PUT"]))
def test_malformed_content_length_never_fails_with_a_500(server: tuple[str, Any], path: str, length: str,
                                                           method: str) -> None:
    base, _ = server
    status, answer = send(base, method, path, None, {"Content-Length": length})
    assert status == 400, (status, answer[:300])
    assert_still_answering(base)


# -- WeChat ---------------------------------------------------------------------------------------

crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
xml_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
wechat_fields = st.dictionaries(
    st.sampled_from(["Content", "Event", "EventKey", "Recognition", "MsgId", "CreateTime", "PicUrl", "Format"]),
    st.one_of(xml_text, st.sampled_from(["CLICK", "subscribe", "unsubscribe", "VIEW", "1", "-1", "9" * 30])),
    max_size=4)
wechat_xml = st.builds(
    lambda msg_type, openid, fields: wx_xml(msg_type, openid=openid, **fields),
    st.sampled_from(["text", "event", "voice", "image", "location", "link", "video", "bogus", ""]),
    st.one_of(st.just(OPENID), st.text(max_size=70)), wechat_fields)
wechat_bodies = st.one_of(wechat_xml, xml_text.map(lambda text: f"<xml>{text}</xml>"),
                          st.binary(max_size=300).map(lambda raw: raw.decode("latin-1")))
modes = st.sampled_from(["plaintext", "safe", "compatible", "forged", "stale", "garbage-query"])
garbage_query = st.dictionaries(st.sampled_from(["signature", "timestamp", "nonce", "encrypt_type", "msg_signature",
                                                 "echostr", "openid"]), st.text(max_size=30), max_size=6)


def signed(timestamp: int | None = None, **extra: str) -> dict[str, str]:
    stamp, nonce = str(timestamp or int(time.time())), uuid.uuid4().hex[:16]
    return {"signature": WeChatHarness.sign(stamp, nonce), "timestamp": stamp, "nonce": nonce,
            "openid": OPENID, **extra}


def wechat_request(mode: str, xml: str, query: dict[str, str]) -> tuple[dict[str, str], bytes]:
    """(query parameters, body) of a request as WeChat would send it in `mode` -- or a broken one."""
    if mode in ("plaintext", "forged", "stale", "garbage-query"):
        params = {"plaintext": signed(), "forged": {**signed(), "signature": "0" * 40},
                  "stale": signed(int(time.time()) - 3600), "garbage-query": query}[mode]
        return params, xml.encode("utf-8", "surrogatepass")
    params = signed(encrypt_type="aes")
    try:
        envelope = xmltodict.parse(crypto.encrypt_message(xml, params["nonce"], params["timestamp"]))["xml"]
    except Exception:  # wechatpy cannot encrypt this text: send it as plaintext with aes announced
        return params, xml.encode("utf-8", "surrogatepass")
    params["msg_signature"] = envelope["MsgSignature"]
    inner = f"<Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt>"
    body = xml.replace("</xml>", inner + "</xml>") if mode == "compatible" else f"<xml><ToUserName>{ACCOUNT}</ToUserName>{inner}</xml>"
    return params, body.encode("utf-8", "surrogatepass")


@BOUNDED
@given(mode=modes, xml=wechat_bodies, query=garbage_query)
def test_wechat_parsing_never_fails_with_a_500(server: tuple[str, Any], mode: str, xml: str,
                                               query: dict[str, str]) -> None:
    base, _ = server
    params, body = wechat_request(mode, xml, query)
    status, answer = send(base, "POST", f"{WECHAT}?{urlencode(params)}", body, {"Content-Type": "text/xml"})
    assert status < 500, (mode, status, answer[:300])
    if mode in ("forged", "stale"):
        assert status == 403
    status, _ = send(base, "GET", f"{WECHAT}?{urlencode({**signed(), 'echostr': 'alive'})}")
    assert status == 200
    assert_still_answering(base)

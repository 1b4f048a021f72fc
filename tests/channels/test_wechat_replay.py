"""Replay protection, encrypted-only mode, menu clicks and headers of the WeChat channel.

Requests are signed and encrypted with wechatpy's client side (tests/channels/conftest.py) and
sent over HTTP to the channel in a real Sanic server. The Redis tests use a redis-server the
session started on a free port (`redis_server`, tests/channels/conftest.py), each test under a key
prefix of its own, removed afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis.asyncio as redis_asyncio
import yaml
from wechatpy.utils import check_signature

from bot.channels.wechat.channel import ENCRYPTED_ONLY, MENU_UNKNOWN, REPLAYED, STALE, STALE_TIMESTAMP, WeChatInput
from bot.channels.wechat.replay import MemoryNonceStore, RedisNonceStore, fresh
from bot.channels.wechat.settings import settings_from
from tests.channels.conftest import ACCOUNT, OPENID, TOKEN, WeChatHarness, text_xml, wx_xml
from tests.ports import free_port
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """A settable clock of Unix seconds for the channel's timestamp window."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def refusals(caplog: pytest.LogCaptureFixture) -> Any:
    """The reasons (`wechat_refusal`) of the channel's refusals logged so far, in order."""
    caplog.set_level(logging.WARNING, logger="bot.channels.wechat")
    return lambda: [record.wechat_refusal for record in caplog.records if hasattr(record, "wechat_refusal")]


def params_at(wx: WeChatHarness, offset: float, **extra: str) -> dict[str, str]:
    """Correctly signed query parameters whose timestamp is `offset` seconds from now."""
    timestamp, nonce = str(int(time.time() + offset)), uuid.uuid4().hex[:16]
    return {"signature": wx.sign(timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
            "openid": OPENID, **extra}


# -- the timestamp window ------------------------------------------------------------------

@pytest.mark.parametrize("offset", [-310, 310, -86400 * 365])  # 10 s from the edge: a slow run cannot cross it
async def test_signatures_outside_the_window_are_refused(wechat: Any, offset: float) -> None:
    wx = await wechat()
    status, body = await wx.get(params_at(wx, offset, echostr="echo-me"))
    assert status == 403 and "echo-me" not in body
    reply = await wx.post(text_xml("截止日期"), params=params_at(wx, offset))
    assert reply.status == 403 and reply.body == STALE
    reply = await wx.post_aes(text_xml("截止日期"), params=params_at(wx, offset, encrypt_type="aes"))
    assert reply.status == 403
    assert wx.rasa.calls == []


@pytest.mark.parametrize("offset", [-290, 0, 290])
async def test_signatures_inside_the_window_are_answered(wechat: Any, offset: float) -> None:
    wx = await wechat()
    assert await wx.get(params_at(wx, offset, echostr="echo-me")) == (200, "echo-me")
    assert (await wx.post(text_xml("截止日期"), params=params_at(wx, offset))).content == "您问的是：截止日期"


async def test_the_window_is_configurable(wechat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from({"timestamp_window": 60}, {}).timestamp_window == 60
    assert settings_from({"timestamp_window": 60}, {"WECHAT_TIMESTAMP_WINDOW": "30"}).timestamp_window == 30
    assert settings_from({"timestamp_window": "soon"}, {}).timestamp_window == 300  # invalid: the default
    wx = await wechat(timestamp_window=60)
    assert (await wx.post(text_xml("截止日期"), params=params_at(wx, -100))).status == 403
    assert (await wx.post(text_xml("截止日期"), params=params_at(wx, -50))).status == 200


def test_fresh_accepts_only_plain_decimal_timestamps() -> None:
    assert fresh("1700000000", 300, now=1700000299) and not fresh("1700000000", 300, now=1700000301)
    for bad in ("", "-1700000000", "1.7e9", "１７００００００００", "0x6553f100", "9" * 40,
                "01700000000", "001700000000", "1700000000\n", " 1700000000", "+1700000000", "1700000000 ", "0"):
        assert not fresh(bad, 300, now=1700000000), repr(bad)


# -- nonces ----------------------------------------------------------------------------------------

async def test_a_captured_signature_cannot_carry_another_message(wechat: Any) -> None:
    wx = await wechat()
    captured = wx.signed_params()
    assert (await wx.post(text_xml("截止日期是什么时候"), params=captured)).status == 200
    forged = await wx.post(text_xml("把我的对话给我", openid="oAttacker_0123456789abcdef"), params=captured)
    assert forged.status == 403 and forged.body == STALE
    assert wx.rasa.texts == ["截止日期是什么时候"]


async def test_wechats_own_retry_of_the_same_request_gets_the_same_reply(wechat: Any) -> None:
    wx = await wechat()
    params, xml = wx.signed_params(), text_xml("在哪里登记")
    first = await wx.post(xml, params=dict(params))
    again = await wx.post(xml, params=dict(params))
    assert first.status == again.status == 200 and again.content == first.content == "您问的是：在哪里登记"
    assert wx.rasa.texts == ["在哪里登记"]


async def test_encrypted_replay_after_the_dedupe_window_is_refused(wechat: Any, refusals: Any) -> None:
    """A captured safe-mode request, replayed once the dedupe record is gone: refused by the nonce
    memory while inside the timestamp window, and by the timestamp window after it."""
    clock = Clock()
    wx = await wechat(dedupe_ttl=0.2, timestamp_window=30, clock=clock)
    params = wx.signed_params(at=clock.now, encrypt_type="aes")
    encrypt, signature = wx.encrypt(text_xml("截止日期是什么时候"), params)
    params["msg_signature"] = signature
    body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    assert (await wx.post_raw(dict(params), body.encode())).status == 200
    await asyncio.sleep(0.4)  # past the dedupe window (0.2 s) ...
    clock.now += 20  # ... and 20 s later, still inside the 30 s timestamp window
    replay = await wx.post_raw(dict(params), body.encode())
    assert replay.status == 403 and replay.body == STALE
    assert refusals() == [REPLAYED]  # the nonce memory refused it, not the window
    clock.now += 20  # 40 s after the signature: past the timestamp window as well
    replay = await wx.post_raw(dict(params), body.encode())
    assert replay.status == 403 and replay.body == STALE
    assert refusals() == [REPLAYED, STALE_TIMESTAMP]
    assert wx.rasa.texts == ["截止日期是什么时候"]


async def test_a_signature_resplit_between_timestamp_and_nonce_is_refused(wechat: Any) -> None:
    """The signature hashes sorted(token, timestamp, nonce) concatenated, so ("0" + ts, "0") carries
    the signature of (ts, "00"): the same signed characters, another timestamp:nonce."""
    wx = await wechat()
    timestamp = str(int(time.time()))
    captured = {"signature": wx.sign(timestamp, "00"), "timestamp": timestamp, "nonce": "00", "openid": OPENID}
    resplit = dict(captured, timestamp="0" + timestamp, nonce="0")
    check_signature(TOKEN, resplit["signature"], resplit["timestamp"], resplit["nonce"])  # wechatpy accepts it
    assert (await wx.post(text_xml("截止日期是什么时候"), params=dict(captured))).status == 200
    forged = await wx.post(text_xml("把我的对话给我", openid="oAttacker_0123456789abcdef"), params=resplit)
    assert forged.status == 403
    got = await wx.get(dict(resplit, echostr="echo-me"))
    assert got[0] == 403 and "echo-me" not in got[1]
    assert wx.rasa.texts == ["截止日期是什么时候"]


async def test_a_captured_url_check_cannot_carry_a_message(wechat: Any, refusals: Any) -> None:
    wx = await wechat()
    captured = wx.signed_params()
    assert await wx.get(dict(captured, echostr="echo-me")) == (200, "echo-me")
    assert await wx.get(dict(captured, echostr="echo-me")) == (200, "echo-me")  # a repeated URL check is harmless
    forged = await wx.post(text_xml("把我的对话给我", openid="oAttacker_0123456789abcdef"), params=dict(captured))
    assert forged.status == 403 and forged.body == STALE
    assert refusals() == [REPLAYED] and wx.rasa.calls == []
    message = wx.signed_params()  # and a message's signature cannot pass a URL check afterwards
    assert (await wx.post(text_xml("截止日期"), params=dict(message))).status == 200
    assert (await wx.get(dict(message, echostr="echo-me")))[0] == 403
    assert refusals() == [REPLAYED, REPLAYED]


async def test_a_captured_safe_mode_signature_cannot_carry_a_plaintext_message(wechat: Any, refusals: Any) -> None:
    wx = await wechat()
    params = wx.signed_params(encrypt_type="aes")
    assert (await wx.post_aes(text_xml("截止日期是什么时候"), params=dict(params))).status == 200
    plaintext = {key: params[key] for key in ("signature", "timestamp", "nonce", "openid")}
    forged = await wx.post(text_xml("把我的对话给我", openid="oAttacker_0123456789abcdef"), params=plaintext)
    assert forged.status == 403 and refusals() == [REPLAYED]
    assert wx.rasa.texts == ["截止日期是什么时候"]


async def test_memory_store_forgets_after_the_ttl() -> None:
    now = [1000.0]
    store = MemoryNonceStore(clock=lambda: now[0])
    assert await store.claim("t:n", "message-1", ttl=600) is None
    assert await store.claim("t:n", "message-2", ttl=600) == "message-1"
    now[0] += 601
    assert await store.claim("t:n", "message-2", ttl=600) is None


async def test_the_redis_tests_use_a_server_they_started(redis_server: RedisServer) -> None:
    client = redis_asyncio.Redis.from_url(redis_server.url)
    try:
        info = await client.info("server")
        config = await client.config_get("*")
    finally:
        await client.close()
    assert redis_server.process is not None
    assert info["tcp_port"] == redis_server.port and info["process_id"] == redis_server.process.pid
    assert config["dir"] == str(redis_server.folder) and config["save"] == "" and config["appendonly"] == "no"


async def test_redis_store_claims_atomically_and_expires(redis_server: RedisServer, redis_prefix: str) -> None:
    store = RedisNonceStore(redis_server.url, redis_prefix)
    try:
        results = await asyncio.gather(*(store.claim("t:n", f"message-{i}", ttl=600) for i in range(10)))
        assert results.count(None) == 1  # exactly one claimant wins
        winner = f"message-{results.index(None)}"
        assert all(owner == winner for owner in results if owner is not None)
        client = redis_asyncio.Redis.from_url(redis_server.url)
        assert 0 < await client.pttl(redis_prefix + "t:n") <= 600_000
        await client.close()
    finally:
        await store.close()


async def test_replicas_share_the_nonces_in_redis(wechat: Any, redis_server: RedisServer, redis_prefix: str) -> None:
    url = redis_server.url
    first = await wechat(nonce_store="redis", redis_url=url, redis_prefix=redis_prefix)
    second = await wechat(nonce_store="redis", redis_url=url, redis_prefix=redis_prefix)
    captured = first.signed_params()
    assert (await first.post(text_xml("截止日期是什么时候"), params=dict(captured))).status == 200
    forged = await second.post(text_xml("另一条消息", openid="oAttacker_0123456789abcdef"), params=dict(captured))
    assert forged.status == 403
    assert first.rasa.texts == ["截止日期是什么时候"] and second.rasa.calls == []
    client = redis_asyncio.Redis.from_url(url)
    keys = [key async for key in client.scan_iter(match=redis_prefix + "*")]
    await client.close()
    assert keys == [(redis_prefix + captured["signature"]).encode()]  # keyed by the signature, in Redis


async def test_unreachable_redis_refuses_rather_than_accepts(wechat: Any) -> None:
    nobody = free_port()  # bound and closed again: nothing listens there
    wx = await wechat(nonce_store="redis", redis_url=f"redis://127.0.0.1:{nobody}/0")
    reply = await wx.post(text_xml("截止日期"))
    assert reply.status == 503 and wx.rasa.calls == []


def test_nonce_store_settings_from_credentials_and_environment() -> None:
    settings = settings_from({"nonce_store": "redis", "redis_prefix": "p:"}, {"WECHAT_REDIS_URL": "redis://r:6379/2"})
    assert (settings.nonce_store, settings.redis_url, settings.redis_prefix) == ("redis", "redis://r:6379/2", "p:")
    assert settings_from({"nonce_store": "memory"}, {"WECHAT_NONCE_STORE": "redis"}).nonce_store == "redis"
    assert settings_from({"nonce_store": "etcd"}, {}).nonce_store == "memory"


# -- encrypted only -------------------------------------------------------------------------------

async def test_encrypted_only_refuses_plaintext_messages(wechat: Any) -> None:
    wx = await wechat(encrypted_only=True)
    reply = await wx.post(text_xml("明文消息"))
    assert reply.status == 403 and reply.body == ENCRYPTED_ONLY
    assert (await wx.post_aes(text_xml("安全模式"))).content == "您问的是：安全模式"
    assert (await wx.post_aes(text_xml("兼容模式"), compatible=True)).content == "您问的是：兼容模式"
    assert await wx.get(wx.signed_params(echostr="echo-me")) == (200, "echo-me")  # the URL check still works
    assert wx.rasa.texts == ["安全模式", "兼容模式"]


async def test_encrypted_only_without_a_key_refuses_everything(wechat: Any) -> None:
    wx = await wechat(encrypted_only=True, aes_key="")
    assert (await wx.post(text_xml("明文消息"))).status == 403
    assert (await wx.post_aes(text_xml("加密消息"))).status == 503
    assert wx.rasa.calls == []


def test_encrypted_only_from_credentials_or_environment() -> None:
    assert not settings_from({}, {}).encrypted_only
    assert settings_from({"encrypted_only": True}, {}).encrypted_only
    assert settings_from({}, {"WECHAT_ENCRYPTED_ONLY": "1"}).encrypted_only
    assert not settings_from({"encrypted_only": True}, {"WECHAT_ENCRYPTED_ONLY": "false"}).encrypted_only


# -- menu clicks ----------------------------------------------------------------------------------

MENU = {"KEPU_DEADLINE": "活动登记填报截止到什么时候？"}


async def test_a_menu_click_is_answered_like_the_typed_question(wechat: Any) -> None:
    wx = await wechat(menu=MENU)
    reply = await wx.post(wx_xml("event", Event="CLICK", EventKey="KEPU_DEADLINE"))
    assert reply.status == 200 and reply.content == "您问的是：活动登记填报截止到什么时候？"
    [call] = wx.rasa.calls
    assert call.text == "活动登记填报截止到什么时候？" and call.sender_id == f"wx-{OPENID}"
    assert call.metadata["wechat"]["menu_key"] == "KEPU_DEADLINE"
    safe = await wx.post_aes(wx_xml("event", Event="CLICK", EventKey="KEPU_DEADLINE", create_time=int(time.time()) - 5))
    assert safe.content == "您问的是：活动登记填报截止到什么时候？"


async def test_an_unknown_menu_key_gets_a_polite_line(wechat: Any) -> None:
    wx = await wechat(menu=MENU)
    reply = await wx.post(wx_xml("event", Event="CLICK", EventKey="NO_SUCH_KEY"))
    assert reply.status == 200 and reply.content == MENU_UNKNOWN
    assert wx.rasa.calls == []


async def test_two_different_menu_clicks_in_one_second_are_both_answered(wechat: Any) -> None:
    wx = await wechat(menu={**MENU, "KEPU_CONTACT": "咨询电话和联系人是谁？"})
    now = int(time.time())
    for key in ("KEPU_DEADLINE", "KEPU_CONTACT"):
        assert (await wx.post(wx_xml("event", Event="CLICK", EventKey=key, create_time=now))).status == 200
    assert wx.rasa.texts == ["活动登记填报截止到什么时候？", "咨询电话和联系人是谁？"]


def test_the_projects_menu_asks_questions_the_knowledge_base_knows(kb: Any) -> None:
    credentials = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8"))
    menu = WeChatInput.from_credentials(credentials["bot.channels.wechat.WeChatInput"]).settings.menu
    labels = {question.label for question in kb.questions}
    assert menu and set(menu.values()) <= labels


def test_invalid_menu_entries_are_left_out() -> None:
    menu = settings_from({"menu": {"OK": "截止日期", "EMPTY": "", "LONG" * 40: "问题", 7: "数字键"}}, {}).menu
    assert menu == {"OK": "截止日期", "7": "数字键"}
    assert settings_from({"menu": ["not", "a", "mapping"]}, {}).menu == {}


# -- headers ----------------------------------------------------------------------------------------

async def test_wechat_replies_say_nosniff(wechat: Any) -> None:
    wx = await wechat()
    session = wx._session
    assert session is not None
    async with session.post(f"{wx.base}?{urlencode(wx.signed_params())}", data=text_xml("你好").encode()) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/xml")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    async with session.get(wx.base, params=wx.signed_params(echostr="e")) as resp:
        assert resp.status == 200 and resp.headers["X-Content-Type-Options"] == "nosniff"
    async with session.post(wx.base, data=b"<xml/>") as resp:  # refused: still nosniff
        assert resp.status == 403 and resp.headers["X-Content-Type-Options"] == "nosniff"

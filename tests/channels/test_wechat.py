"""The WeChat Official Account channel, driven the way WeChat drives it.

Requests are signed and encrypted with wechatpy (the client side of the same
library), sent over HTTP to the channel mounted in a real Sanic server by
Rasa's own `register`, with a fake Rasa agent; delayed replies go to a fake
WeChat API server on 127.0.0.1 that records every call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import xmltodict

from bot.channels.wechat.channel import EMPTY_REPLY, MAX_BODY_BYTES, TEXT_ONLY, VOICE_UNRECOGNIZED, WeChatInput
from bot.channels.wechat.codec import REPLY_LIMIT_BYTES, split_reply
from bot.dialogue import hot_buttons
from tests.channels.conftest import (
    ACCOUNT,
    APP_ID,
    OPENID,
    TOKEN,
    FakeRasa,
    FakeWeChatApi,
    WeChatHarness,
    next_msg_id,
    text_xml,
    wait_until,
    wx_xml,
)

ENV_VARS = ("WECHAT_TOKEN", "WECHAT_APP_ID", "WECHAT_APP_SECRET", "WECHAT_AES_KEY", "WECHAT_API_BASE")


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


# -- configuration ------------------------------------------------------------

def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECHAT_TOKEN", TOKEN)
    monkeypatch.setenv("WECHAT_APP_ID", APP_ID)
    monkeypatch.setenv("WECHAT_APP_SECRET", "s3cret")
    monkeypatch.setenv("WECHAT_AES_KEY", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
    channel = WeChatInput.from_credentials({"api_base": "http://127.0.0.1:9/", "passive_timeout": 0.3,
                                            "token": "from-yaml", "app_secret": "from-yaml"})
    assert channel.name() == "wechat"
    assert channel.settings.token == TOKEN and channel.settings.app_secret == "s3cret"
    assert channel.settings.api_base == "http://127.0.0.1:9"
    assert channel.settings.passive_timeout == 0.3
    assert channel.crypto is not None


def test_loads_without_any_wechat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    channel = WeChatInput.from_credentials(None)
    assert not channel.settings.configured
    assert channel.crypto is None
    assert channel.settings.api_base == "https://api.weixin.qq.com"
    assert channel.settings.passive_timeout == 4.0


async def test_unconfigured_channel_answers_503(monkeypatch: pytest.MonkeyPatch, fake_api: FakeWeChatApi) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    wx = WeChatHarness(WeChatInput.from_credentials({}), FakeRasa(), fake_api)
    await wx.start()
    try:
        status, body = await wx.get(wx.signed_params(echostr="abc"))
        assert status == 503 and "未配置" in body
        reply = await wx.post(text_xml("你好"))
        assert reply.status == 503 and "未配置" in reply.body
        assert wx.rasa.calls == []
    finally:
        await wx.stop()


# -- URL verification ---------------------------------------------------------

async def test_url_verification_echoes_echostr(wechat: Any) -> None:
    wx = await wechat()
    assert await wx.get(wx.signed_params(echostr="7364512983746")) == (200, "7364512983746")


async def test_url_verification_with_forged_signature_is_403(wechat: Any) -> None:
    wx = await wechat()
    params = wx.signed_params(echostr="7364512983746")
    forged = dict(params, signature=wx.sign(params["timestamp"], params["nonce"], token="not-the-token"))
    status, body = await wx.get(forged)
    assert status == 403 and "7364512983746" not in body
    tampered = dict(params, timestamp=str(int(params["timestamp"]) + 1))
    assert (await wx.get(tampered))[0] == 403
    assert (await wx.get({"echostr": "x", "timestamp": "1", "nonce": "2"}))[0] == 403


# -- text round trips ---------------------------------------------------------

async def test_text_round_trip_plaintext(wechat: Any) -> None:
    wx = await wechat()
    msg_id = next_msg_id()
    reply = await wx.post(text_xml("截止日期是什么时候", msg_id=msg_id))
    assert reply.status == 200
    assert reply.xml is not None
    assert reply.xml["ToUserName"] == OPENID and reply.xml["FromUserName"] == ACCOUNT
    assert reply.xml["MsgType"] == "text"
    assert reply.content == "您问的是：截止日期是什么时候"
    [call] = wx.rasa.calls
    assert call.text == "截止日期是什么时候"
    assert call.sender_id == f"wx-{OPENID}"
    assert call.input_channel == "wechat"
    assert call.metadata["wechat"]["msg_id"] == msg_id
    assert wx.api.sends == []  # answered passively, no API call


async def test_text_round_trip_safe_mode(wechat: Any) -> None:
    wx = await wechat()
    reply = await wx.post_aes(text_xml("在哪里登记"))
    assert reply.status == 200
    assert "<Encrypt>" in reply.body and "您问的是" not in reply.body  # the wire carries ciphertext only
    assert reply.content == "您问的是：在哪里登记"
    assert reply.xml is not None and reply.xml["ToUserName"] == OPENID
    assert wx.rasa.texts == ["在哪里登记"]


async def test_compatible_mode_answers_the_encrypted_message(wechat: Any) -> None:
    wx = await wechat()
    msg_id = next_msg_id()
    reply = await wx.post_aes(text_xml("密文里的问题", msg_id=msg_id), compatible=True,
                              plaintext=text_xml("明文里的问题", msg_id=msg_id))
    assert reply.status == 200 and "<Encrypt>" in reply.body
    assert reply.content == "您问的是：密文里的问题"
    assert wx.rasa.texts == ["密文里的问题"]


async def test_invalid_aes_key_disables_safe_mode_only(wechat: Any) -> None:
    wx = await wechat(aes_key="too-short")
    reply = await wx.post_aes(text_xml("加密消息"))
    assert reply.status == 503 and "WECHAT_AES_KEY" in reply.body
    assert (await wx.post(text_xml("明文消息"))).content == "您问的是：明文消息"
    assert wx.rasa.texts == ["明文消息"]


async def test_empty_text_is_not_sent_to_rasa(wechat: Any) -> None:
    wx = await wechat()
    assert (await wx.post(text_xml("   "))).content == EMPTY_REPLY
    assert wx.rasa.calls == []


async def test_rasa_failure_still_gets_a_polite_answer(wechat: Any) -> None:
    wx = await wechat()
    wx.rasa.error = RuntimeError("model exploded")
    reply = await wx.post(text_xml("截止日期"))
    assert reply.status == 200 and "稍后再试" in reply.content


# -- message types ------------------------------------------------------------

async def test_voice_with_recognition_is_treated_as_text(wechat: Any) -> None:
    wx = await wechat()
    reply = await wx.post(wx_xml("voice", MediaId="media-1", Format="amr", Recognition="联系电话是多少"))
    assert reply.content == "您问的是：联系电话是多少"
    [call] = wx.rasa.calls
    assert call.text == "联系电话是多少" and call.metadata["wechat"]["msg_type"] == "voice"


@pytest.mark.parametrize("fields", [{}, {"Recognition": ""}])
async def test_voice_without_recognition_asks_for_text(wechat: Any, fields: dict[str, str]) -> None:
    wx = await wechat()
    reply = await wx.post(wx_xml("voice", MediaId="media-1", Format="amr", **fields))
    assert reply.content == VOICE_UNRECOGNIZED and "文字" in reply.content
    assert wx.rasa.calls == []


async def test_subscribe_welcomes_with_numbered_hot_questions(wechat: Any, kb: Any) -> None:
    wx = await wechat()
    reply = await wx.post(wx_xml("event", Event="subscribe", EventKey=""))
    lines = reply.content.split("\n")
    assert lines[0].startswith("您好，欢迎关注")
    hot = hot_buttons(kb)
    assert len(hot) >= 3
    assert lines[-len(hot):] == [f"回复 {i} 查看：{label}" for i, (label, _) in enumerate(hot, 1)]
    assert wx.rasa.calls == []
    await wx.post(text_xml("1"))  # the first hot question, answered exactly by its payload
    assert wx.rasa.texts == [hot[0][1]]


@pytest.mark.parametrize(("msg_type", "fields"), [
    ("image", {"PicUrl": "http://mmbiz.qpic.cn/x.jpg", "MediaId": "m1"}),
    ("location", {"Location_X": "37.51", "Location_Y": "105.19", "Scale": "15", "Label": "中卫市"}),
    ("link", {"Title": "标题", "Description": "描述", "Url": "http://example.com/"}),
    ("video", {"MediaId": "m1", "ThumbMediaId": "t1"}),
    ("shortvideo", {"MediaId": "m1", "ThumbMediaId": "t1"}),
    ("file", {"Title": "附件.docx"}),
])
async def test_other_message_types_get_a_text_only_notice(wechat: Any, msg_type: str, fields: dict[str, str]) -> None:
    wx = await wechat()
    reply = await wx.post(wx_xml(msg_type, **fields))
    assert reply.status == 200 and reply.content == TEXT_ONLY
    assert wx.rasa.calls == []


async def test_unsubscribe_is_logged_and_answered_success(wechat: Any, caplog: pytest.LogCaptureFixture) -> None:
    wx = await wechat()
    caplog.set_level("INFO", logger="bot.channels.wechat")
    reply = await wx.post(wx_xml("event", Event="unsubscribe", EventKey=""))
    assert (reply.status, reply.body) == (200, "success")
    assert any("unsubscribed" in r.getMessage() for r in caplog.records)
    assert wx.rasa.calls == []


# -- retries and the 5-second rule --------------------------------------------

async def test_retried_message_reaches_rasa_once(wechat: Any) -> None:
    wx = await wechat()
    xml = text_xml("截止日期", msg_id=next_msg_id())
    first = await wx.post(xml)
    retry = await wx.post(xml)  # WeChat's retry: same MsgId, new timestamp and nonce
    assert first.content == retry.content == "您问的是：截止日期"
    assert len(wx.rasa.calls) == 1


async def test_retry_while_processing_is_not_answered_twice(wechat: Any) -> None:
    wx = await wechat(passive_timeout=0.2)
    wx.rasa.delay = 0.8
    xml = text_xml("一个慢问题", msg_id=next_msg_id())
    first = await wx.post(xml)
    retry = await wx.post(xml)  # Rasa is still working on the first
    assert (first.body, retry.body) == ("success", "success")
    assert await wait_until(lambda: wx.api.delivered, timeout=3)
    late_retry = await wx.post(xml)
    assert late_retry.body == "success"
    await asyncio.sleep(0.3)
    assert len(wx.rasa.calls) == 1
    assert wx.api.delivered == ["您问的是：一个慢问题"]


async def test_slow_answer_goes_through_the_api_with_one_access_token(wechat: Any) -> None:
    wx = await wechat(passive_timeout=0.2)
    wx.rasa.delay = 0.8
    started = time.monotonic()
    reply = await wx.post(text_xml("第一个问题"))
    assert (reply.status, reply.body) == (200, "success")
    assert time.monotonic() - started < 0.7  # answered before Rasa finished
    assert await wait_until(lambda: len(wx.api.delivered) == 1)
    assert (await wx.post(text_xml("第二个问题"))).body == "success"
    assert await wait_until(lambda: len(wx.api.delivered) == 2)
    assert wx.api.delivered == ["您问的是：第一个问题", "您问的是：第二个问题"]
    assert len(wx.api.token_calls) == 1
    assert wx.api.token_calls[0] == {"grant_type": "client_credential", "appid": APP_ID, "secret": "test-app-secret"}
    for send in wx.api.sends:
        assert send["access_token"] == "ACCESS-1"
        assert send["body"]["touser"] == OPENID and send["body"]["msgtype"] == "text"


async def test_rejected_access_token_is_refreshed_and_retried_once(wechat: Any) -> None:
    wx = await wechat(passive_timeout=0.1)
    wx.rasa.delay = 0.3
    wx.api.send_errors = [40001]
    assert (await wx.post(text_xml("令牌失效"))).body == "success"
    assert await wait_until(lambda: wx.api.delivered)
    assert [s["access_token"] for s in wx.api.sends] == ["ACCESS-1", "ACCESS-2"]
    assert len(wx.api.token_calls) == 2
    assert wx.api.delivered == ["您问的是：令牌失效"]


async def test_token_rejected_again_gives_up(wechat: Any) -> None:
    wx = await wechat(passive_timeout=0.1)
    wx.rasa.delay = 0.3
    wx.api.send_errors = [40001, 42001, 40001, 40001]
    assert (await wx.post(text_xml("令牌一直失效"))).body == "success"
    assert await wait_until(lambda: len(wx.api.sends) >= 2)
    await asyncio.sleep(0.5)
    assert len(wx.api.sends) == 2 and len(wx.api.token_calls) == 2
    assert wx.api.delivered == []


async def test_user_silent_for_48_hours_reply_waits_for_their_next_message(wechat: Any, caplog: pytest.LogCaptureFixture) -> None:
    wx = await wechat(passive_timeout=0.1)
    caplog.set_level("WARNING", logger="bot.channels.wechat")
    wx.rasa.delay = 0.3
    wx.api.send_errors = [45015]
    assert (await wx.post(text_xml("很久以前的问题"))).body == "success"
    assert await wait_until(lambda: wx.api.sends)
    await asyncio.sleep(0.4)
    assert len(wx.api.sends) == 1 and len(wx.api.token_calls) == 1
    assert any("48 hours" in r.getMessage() for r in caplog.records)


# -- hostile requests ---------------------------------------------------------

async def test_forged_signature_is_403(wechat: Any) -> None:
    wx = await wechat()
    params = wx.signed_params()
    forged = dict(params, signature=wx.sign(params["timestamp"], params["nonce"], token="guessed-token"))
    reply = await wx.post(text_xml("伪造的消息"), params=forged)
    assert reply.status == 403
    unsigned = {k: v for k, v in params.items() if k != "signature"}
    assert (await wx.post(text_xml("没有签名"), params=unsigned)).status == 403
    assert wx.rasa.calls == []


async def test_forged_msg_signature_in_safe_mode_is_403(wechat: Any) -> None:
    wx = await wechat()
    reply = await wx.post_aes(text_xml("伪造的加密消息"), msg_signature="0" * 40)
    assert reply.status == 403
    params = wx.signed_params(encrypt_type="aes")
    encrypt, _ = wx.encrypt(text_xml("没有 msg_signature"), params)
    body = f"<xml><ToUserName>{ACCOUNT}</ToUserName><Encrypt>{encrypt}</Encrypt></xml>".encode()
    assert (await wx.post_raw(params, body)).status == 403
    assert wx.rasa.calls == []


BOMB = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        f"<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{OPENID}</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>")
XXE = (f'<!doctype xml [<!entity xxe SYSTEM "file:///etc/passwd">]><xml><ToUserName>{ACCOUNT}</ToUserName>'
       f"<FromUserName>{OPENID}</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>"
       "<Content>&xxe;</Content><MsgId>2</MsgId></xml>")


@pytest.mark.parametrize("xml", [BOMB, XXE], ids=["billion-laughs", "xxe"])
async def test_xml_with_doctype_or_entity_is_400(wechat: Any, xml: str) -> None:
    wx = await wechat()
    for reply in (await wx.post(xml), await wx.post_aes(xml)):  # plaintext, and inside the ciphertext
        # rejected by the screening before any parser sees it, not by a parser error
        assert (reply.status, reply.body) == (400, "不接受含 DOCTYPE 或 ENTITY 的 XML")
    harmless_doctype = "<!DOCTYPE xml>" + text_xml("带 DOCTYPE 的正常消息")
    assert (await wx.post(harmless_doctype)).status == 400
    assert wx.rasa.calls == []


@pytest.mark.parametrize("body", [
    b"<xml><MsgType>text",
    b"this is not xml",
    b"",
    b"\xff\xfe<xml/>",
    f"<xml><FromUserName>{OPENID}</FromUserName><Content>no type</Content></xml>".encode(),
    text_xml("x", openid="bad openid<script>").encode(),
    text_xml("x").replace("<MsgId>", "<MsgId>abc").encode(),
    text_xml("x").replace("</xml>", "<Content>second</Content></xml>").encode(),
], ids=["truncated", "text", "empty", "not-utf8", "no-msgtype", "bad-openid", "bad-msgid", "two-contents"])
async def test_malformed_xml_is_400(wechat: Any, body: bytes) -> None:
    wx = await wechat()
    reply = await wx.post_raw(wx.signed_params(), body)
    assert reply.status == 400
    assert wx.rasa.calls == []


async def test_body_over_64_kb_is_413_and_the_server_survives(wechat: Any) -> None:
    wx = await wechat()
    megabyte = text_xml("x" * (1 << 20)).encode()
    assert (await wx.post_raw(wx.signed_params(), megabyte)).status == 413  # by Content-Length

    async def chunked() -> Any:  # no Content-Length: the bytes actually read count
        for i in range(0, len(megabyte), 16384):
            yield megabyte[i:i + 16384]

    assert (await wx.post_raw(wx.signed_params(), chunked())).status == 413
    just_over = text_xml("x" * MAX_BODY_BYTES).encode()
    assert (await wx.post_raw(wx.signed_params(), just_over)).status == 413
    assert wx.rasa.calls == []
    assert (await wx.post(text_xml("还在吗"))).content == "您问的是：还在吗"


async def test_oversized_content_length_is_413_before_the_body_arrives(wechat: Any) -> None:
    wx = await wechat()
    url = urlsplit(wx.base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write((f"POST {url.path}?{urlencode(wx.signed_params())} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                      f"Content-Type: text/xml\r\nContent-Length: {1 << 20}\r\n\r\n<xml>").encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=2)  # the rest of the body never comes
    finally:
        writer.close()
    assert status_line.split()[1] == b"413"
    assert wx.rasa.calls == []


async def test_unknown_encrypt_type_is_400(wechat: Any) -> None:
    wx = await wechat()
    reply = await wx.post(text_xml("你好"), params=wx.signed_params(encrypt_type="rsa"))
    assert reply.status == 400
    assert wx.rasa.calls == []


# -- reply formatting ---------------------------------------------------------

LONG = "".join(f"第{i}条：科普日活动期间请各单位按时登记填报活动信息，并做好宣传和安全工作。" for i in range(1, 81))


async def test_long_reply_is_split_on_sentences_under_2048_bytes(wechat: Any) -> None:
    wx = await wechat()
    wx.rasa.reply = lambda text: [{"text": LONG}]
    reply = await wx.post(text_xml("工作要求"))
    first = reply.content
    assert _utf8(LONG) > 2 * REPLY_LIMIT_BYTES
    assert _utf8(first) <= REPLY_LIMIT_BYTES and first.endswith("。")
    expected_parts = split_reply(LONG)
    assert len(expected_parts) >= 3
    assert await wait_until(lambda: len(wx.api.delivered) == len(expected_parts) - 1)
    parts = [first, *wx.api.delivered]
    assert "".join(parts) == LONG
    assert all(_utf8(p) <= REPLY_LIMIT_BYTES and p.endswith("。") for p in parts)


def test_split_reply_boundaries() -> None:
    assert split_reply("短回答。") == ["短回答。"]
    parts = split_reply("第一行\n" * 1000, limit=100, max_parts=1000)
    assert len(parts) == 100
    assert all(_utf8(p) <= 100 and p.startswith("第一行") and not p.endswith("\n") for p in parts)
    unbroken = "没有标点的很长一句话" * 300
    parts = split_reply(unbroken, limit=2048, max_parts=10)
    assert "".join(parts) == unbroken and all(_utf8(p) <= 2048 for p in parts)
    parts = split_reply("一句话。" * 2000, limit=2048, max_parts=3)
    assert len(parts) == 3 and "请拨打" in parts[-1]


@pytest.mark.parametrize("mode", ["plaintext", "safe"])
async def test_cdata_terminator_in_reply_keeps_xml_valid(wechat: Any, mode: str) -> None:
    wx = await wechat()
    nasty = "示例：a]]>b</Content><Injected>注入</Injected>]]]]>结束"
    wx.rasa.reply = lambda text: [{"text": nasty}]
    reply = await (wx.post(text_xml("问题")) if mode == "plaintext" else wx.post_aes(text_xml("问题")))
    assert reply.status == 200
    assert reply.content == nasty
    assert reply.xml is not None and set(reply.xml) == {"ToUserName", "FromUserName", "CreateTime", "MsgType",
                                                        "Content"}
    if mode == "plaintext":
        assert xmltodict.parse(reply.body)["xml"]["Content"] == nasty


async def test_button_number_maps_to_its_payload(wechat: Any) -> None:
    wx = await wechat()
    buttons = [{"title": "活动登记填报截止到什么时候？", "payload": "/ask_deadline"},
               {"title": "咨询电话和联系人是谁？", "payload": "/ask_contact"}]

    def reply(text: str) -> list[dict[str, Any]]:
        if text == "那个":
            return [{"text": "您是想问下面哪个问题吗？", "buttons": buttons}]
        return [{"text": f"您问的是：{text}"}]

    wx.rasa.reply = reply
    offered = await wx.post(text_xml("那个"))
    assert offered.content == ("您是想问下面哪个问题吗？\n回复 1 查看：活动登记填报截止到什么时候？\n"
                               "回复 2 查看：咨询电话和联系人是谁？")
    await wx.post(text_xml("1"))
    assert wx.rasa.texts[-1] == "/ask_deadline"
    assert wx.rasa.calls[-1].metadata["wechat"]["button"] is True
    await wx.post(text_xml("1"))  # the last reply had no buttons: "1" is just text now
    assert wx.rasa.texts[-1] == "1"
    await wx.post(text_xml("那个"))
    await wx.post(text_xml("２"))  # full-width digit
    assert wx.rasa.texts[-1] == "/ask_contact"
    await wx.post(text_xml("那个"))
    await wx.post(text_xml("7"))  # no 7th button
    assert wx.rasa.texts[-1] == "7"


async def test_buttons_are_per_user(wechat: Any) -> None:
    wx = await wechat()
    wx.rasa.reply = lambda text: ([{"text": "请选择：", "buttons": [{"title": "甲", "payload": "/ask_time"}]}]
                                  if text == "菜单" else [{"text": "好的"}])
    await wx.post(text_xml("菜单"))
    await wx.post(text_xml("1", openid="oOtherUser_1234567890abcdef"))
    assert wx.rasa.texts == ["菜单", "1"]
    assert wx.rasa.calls[-1].sender_id == "wx-oOtherUser_1234567890abcdef"

"""Harness for the WeChat channel tests: the channel in a real Sanic server,
a fake Rasa agent, a fake WeChat API server, a client that signs and
encrypts requests with wechatpy the way WeChat does, and a redis-server of
the session's own for the shared nonce store and state."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import redis.asyncio as redis_asyncio
import xmltodict
from aiohttp import web
from rasa.core.channels.channel import UserMessage, register
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from bot.channels.wechat.channel import WeChatInput
from bot.channels.wechat.settings import WeChatSettings
from bot.dialogue import hot_buttons
from tests.servers import RedisServer, SanicServer, new_app

TOKEN = "test-token-4f2a"
APP_ID = "wx1234567890abcdef"
APP_SECRET = "test-app-secret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, like the admin console's
ACCOUNT = "gh_0123456789ab"
OPENID = "oAbCdEfGhIjKlMnOpQrStUvWx_yz"

_names = itertools.count()
_msg_ids = itertools.count(int(time.time()) * 1000)


def next_msg_id() -> int:
    return next(_msg_ids)


def wx_xml(msg_type: str, openid: str = OPENID, msg_id: int | None = None, create_time: int | None = None,
           **fields: Any) -> str:
    """A message as WeChat formats it (strings in CDATA)."""
    nodes = {"ToUserName": ACCOUNT, "FromUserName": openid, "CreateTime": create_time or int(time.time()),
             "MsgType": msg_type, **fields}
    if msg_type != "event":
        nodes["MsgId"] = msg_id if msg_id is not None else next_msg_id()
    parts = [f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}><![CDATA[{v}]]></{k}>" for k, v in nodes.items()]
    return "<xml>" + "".join(parts) + "</xml>"


def text_xml(content: str, **kwargs: Any) -> str:
    return wx_xml("text", Content=content, **kwargs)


class FakeRasa:
    """Stands in for Rasa's agent: canned replies through the real CollectingOutputChannel."""

    def __init__(self) -> None:
        self.calls: list[UserMessage] = []
        self.delay = 0.0
        self.error: Exception | None = None
        self.reply: Callable[[str], list[dict[str, Any]]] = lambda text: [{"text": f"您问的是：{text}"}]

    @property
    def texts(self) -> list[str]:
        return [m.text for m in self.calls]

    async def handle_message(self, message: UserMessage) -> None:
        self.calls.append(message)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        for bot in self.reply(message.text):
            if bot.get("buttons"):
                await message.output_channel.send_text_with_buttons(message.sender_id, bot["text"], bot["buttons"])
            else:
                await message.output_channel.send_text_message(message.sender_id, bot["text"])


class FakeWeChatApi:
    """/cgi-bin/token and /cgi-bin/message/custom/send on 127.0.0.1, recording every call."""

    def __init__(self) -> None:
        self.token_calls: list[dict[str, str]] = []
        self.sends: list[dict[str, Any]] = []
        self.send_errors: list[int] = []  # errcodes for the next sends, then 0
        self.token_delay = 0.0  # seconds /cgi-bin/token takes to answer (overlapping refreshes)
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _token(self, request: web.Request) -> web.Response:
        self.token_calls.append(dict(request.query))
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if request.query.get("appid") != APP_ID or request.query.get("secret") != APP_SECRET:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        return web.json_response({"access_token": f"ACCESS-{len(self.token_calls)}", "expires_in": 7200})

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        errcode = self.send_errors.pop(0) if self.send_errors else 0
        self.sends.append({"access_token": request.query.get("access_token"), "body": body, "errcode": errcode})
        return web.json_response({"errcode": errcode, "errmsg": "ok" if errcode == 0 else "error"})

    @property
    def delivered(self) -> list[str]:
        """Texts WeChat accepted (errcode 0), in order."""
        return [s["body"]["text"]["content"] for s in self.accepted]

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [s for s in self.sends if s["errcode"] == 0]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll `condition` until true or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


@dataclasses.dataclass
class Reply:
    status: int
    body: str
    xml: dict[str, Any] | None = None  # the (decrypted) reply message

    @property
    def content(self) -> str:
        assert self.xml is not None, f"no XML reply: {self.status} {self.body!r}"
        return self.xml["Content"]


class WeChatHarness:
    """The channel served by a real Sanic server, and a WeChat-like client for it."""

    def __init__(self, channel: WeChatInput, rasa: FakeRasa, api: FakeWeChatApi) -> None:
        self.channel = channel
        self.rasa = rasa
        self.api = api
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
        self.base = ""
        self._server: Any = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = new_app("wechat_test")
        app.ctx.agent = self.rasa
        register([self.channel], app, "/webhooks/")  # exactly as Rasa mounts channels
        self._server = await SanicServer(app).start()
        self.base = f"{self._server.base}/webhooks/wechat/webhook"
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._server is not None:
            await self._server.stop()  # after_server_stop closes the channel's API client

    @staticmethod
    def sign(timestamp: str, nonce: str, token: str = TOKEN) -> str:
        signer = WeChatSigner()
        signer.add_data(token, timestamp, nonce)
        return signer.signature

    def signed_params(self, at: float | None = None, **extra: str) -> dict[str, str]:
        """Signed query parameters with a new nonce; the timestamp is now, or `at` (Unix seconds)."""
        timestamp, nonce = str(int(time.time() if at is None else at)), f"n{next(_names)}"
        return {"signature": self.sign(timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
                "openid": OPENID, **extra}

    async def get(self, params: dict[str, str]) -> tuple[int, str]:
        assert self._session is not None
        async with self._session.get(self.base, params=params) as resp:
            return resp.status, await resp.text()

    async def post_raw(self, params: dict[str, str], body: Any, headers: dict[str, str] | None = None) -> Reply:
        assert self._session is not None
        async with self._session.post(f"{self.base}?{urlencode(params)}", data=body, headers=headers) as resp:
            text = await resp.text()
        xml = None
        if resp.status == 200 and text.startswith("<xml>"):
            xml = xmltodict.parse(text)["xml"]
        return Reply(resp.status, text, xml)

    async def post(self, xml: str, params: dict[str, str] | None = None) -> Reply:
        """Plaintext mode."""
        return await self.post_raw(params or self.signed_params(), xml.encode("utf-8"))

    def encrypt(self, xml: str, params: dict[str, str]) -> tuple[str, str]:
        """(Encrypt, msg_signature) for a message, computed by wechatpy."""
        envelope = xmltodict.parse(self.crypto.encrypt_message(xml, params["nonce"], params["timestamp"]))["xml"]
        return envelope["Encrypt"], envelope["MsgSignature"]

    async def post_aes(self, xml: str, compatible: bool = False, params: dict[str, str] | None = None,
                       msg_signature: str | None = None, plaintext: str | None = None) -> Reply:
        """Safe mode (or compatible mode: the plaintext fields and Encrypt); the reply is decrypted."""
        params = params or self.signed_params(encrypt_type="aes")
        encrypt, signature = self.encrypt(xml, params)
        params["msg_signature"] = msg_signature or signature
        if compatible:
            body = (plaintext or xml).replace("</xml>", f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
        else:
            body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        reply = await self.post_raw(params, body.encode("utf-8"))
        if reply.xml is not None:
            envelope = reply.xml
            decrypted = self.crypto.decrypt_message(
                reply.body, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"])
            reply.xml = xmltodict.parse(decrypted)["xml"]
        return reply


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server started for this session on a free port (data in a temporary folder), stopped at
    the end: the tests never touch a Redis they did not start."""
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture()
async def redis_prefix(redis_server: RedisServer) -> AsyncIterator[str]:
    """A key prefix of this test's own in the session's redis-server; its keys are deleted afterwards."""
    prefix = f"kepu-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis_asyncio.Redis.from_url(redis_server.url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.close()


@pytest.fixture()
async def fake_api() -> AsyncIterator[FakeWeChatApi]:
    api = FakeWeChatApi()
    await api.start()
    yield api
    await api.stop()


@pytest.fixture()
async def wechat(fake_api: FakeWeChatApi, kb: Any) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `await wechat(passive_timeout=...)` starts a channel with those settings
    (`clock=`: the channel's clock of Unix seconds, for the timestamp window)."""
    harnesses: list[WeChatHarness] = []

    async def start(clock: Callable[[], float] = time.time, **overrides: Any) -> WeChatHarness:
        settings = WeChatSettings(token=TOKEN, app_id=APP_ID, app_secret=APP_SECRET, aes_key=AES_KEY,
                                  api_base=fake_api.url, passive_timeout=1.0, followup_delay=0.05,
                                  http_timeout=5.0)
        settings = dataclasses.replace(settings, **overrides)
        channel = WeChatInput(settings, hot_questions=lambda: hot_buttons(kb), clock=clock)
        harness = WeChatHarness(channel, FakeRasa(), fake_api)
        await harness.start()
        harnesses.append(harness)
        return harness

    yield start
    for harness in harnesses:
        await harness.stop()

"""Rate limits per sender and per client address (bot/ratelimit.py).

The windows are tested with a clock of the test's own; the HTTP behaviour with the REST channel
mounted by Rasa's `register` in a real Sanic server on a free port, the limiter installed as
bot.server installs it; the shared windows against the session's own redis-server, with two
servers standing for two replicas.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from rasa.core.channels.channel import register

from bot.channels.rest import SafeRestInput
from bot.knowledge.store import consultation_phone
from bot.ratelimit import Limit, LimitSyntaxError, MemoryWindows, RateLimiter, RedisWindows, install
from bot.web.proxies import parse_networks
from tests.channels.conftest import FakeRasa
from tests.ports import free_port
from tests.servers import RedisServer, SanicServer, new_app

PROXY = "127.0.0.1"  # the test client stands for a proxy and names each client in X-Forwarded-For


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("text", "limit"), [("30/60", Limit(30, 60.0)), ("5/0.5", Limit(5, 0.5)),
                                             ("12", Limit(12, 60.0)), ("off", None), ("0", None), ("", None)])
def test_limits_are_parsed(text: str, limit: Limit | None) -> None:
    assert Limit.parse(text) == limit


@pytest.mark.parametrize("text", ["a/60", "-1/60", "5/0", "5/-3", "5/inf"])
def test_malformed_limits_are_refused(text: str) -> None:
    with pytest.raises(LimitSyntaxError):
        Limit.parse(text)


async def test_a_sliding_window_admits_count_then_refuses_until_the_oldest_leaves() -> None:
    clock = Clock()
    windows = MemoryWindows(clock)
    key = [("sender:a", Limit(3, 60))]
    for step in range(3):
        assert await windows.admit(key) is None
        clock.now += 10 * step
    assert await windows.admit(key) == (0, 30.0)  # first at 1000, now 1030: 30 s until it leaves
    clock.now = 1060.0
    assert await windows.admit(key) is None  # the first admission left the window


async def test_a_refused_request_is_counted_on_no_key() -> None:
    clock = Clock()
    windows = MemoryWindows(clock)
    ip, sender = ("ip:x", Limit(10, 60)), ("sender:a", Limit(1, 60))
    assert await windows.admit([ip, sender]) is None
    for _ in range(20):
        assert await windows.admit([ip, sender]) == (1, 60.0)
    assert await windows.admit([ip, ("sender:b", Limit(1, 60))]) is None  # ip counted 2 of 10


def test_settings_come_from_the_environment() -> None:
    limiter = RateLimiter.from_env({"KEPU_RATE_LIMIT_SENDER": "5/10", "KEPU_RATE_LIMIT_IP": "off",
                                    "KEPU_RATE_LIMIT_EXEMPT": "", "KEPU_RATE_LIMIT_STORE": "redis",
                                    "KEPU_RATE_LIMIT_REDIS_URL": "redis://h:1/3", "KEPU_RATE_LIMIT_PREFIX": "p:"})
    assert (limiter.sender, limiter.ip, limiter.exempt) == (Limit(5, 10), None, ())
    assert isinstance(limiter.windows, RedisWindows)
    assert (limiter.windows.url, limiter.windows.prefix) == ("redis://h:1/3", "p:")
    shared = RateLimiter.from_env({"KEPU_RATE_LIMIT_STORE": "redis", "WECHAT_REDIS_URL": "redis://w:2/4"})
    assert isinstance(shared.windows, RedisWindows) and shared.windows.url == "redis://w:2/4"
    default = RateLimiter.from_env({"KEPU_RATE_LIMIT_REDIS_URL": "redis://h:1/3"})
    assert (default.sender, default.ip) == (Limit(30, 60), Limit(300, 60))
    assert isinstance(default.windows, MemoryWindows)
    for broken in ({"KEPU_RATE_LIMIT_STORE": "redis"}, {"KEPU_RATE_LIMIT_STORE": "disk"}):
        with pytest.raises(LimitSyntaxError):
            RateLimiter.from_env(broken)


class Bot:
    """The REST channel and the limiter in a real server; `say` posts as one client address."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.server: SanicServer | None = None
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> Bot:
        app = new_app("ratelimit_test")
        app.ctx.agent = FakeRasa()
        register([SafeRestInput()], app, "/webhooks/")
        install(app, self.limiter)
        self.server = await SanicServer(app).start()
        self.session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.server is not None:
            await self.server.stop()

    async def post(self, path: str, body: Any, client: str) -> tuple[int, Any, Any]:
        assert self.server is not None and self.session is not None
        async with self.session.post(f"{self.server.base}{path}", json=body,
                                     headers={"X-Forwarded-For": client}) as resp:
            return resp.status, await resp.json(content_type=None), resp.headers

    async def say(self, sender: str | None, text: str = "截止日期是什么时候", client: str = "10.0.0.1") -> tuple[int, Any, Any]:
        body = {"message": text} if sender is None else {"sender": sender, "message": text}
        return await self.post("/webhooks/rest/webhook", body, client)


@pytest.fixture()
def proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEPU_TRUSTED_PROXIES", PROXY)


@pytest.fixture()
async def bot(proxied: None) -> AsyncIterator[Bot]:
    started = await Bot(RateLimiter(sender=Limit(3, 3600), ip=Limit(5, 3600), exempt=())).start()
    yield started
    await started.stop()


def assert_too_many(status: int, body: Any, headers: Any, kind: str) -> None:
    assert status == 429
    assert body["error"].startswith("您发送得太频繁了，请") and consultation_phone() in body["error"]
    assert body["limit"] == kind
    assert 1 <= int(headers["Retry-After"]) <= 3600


async def test_a_sender_over_its_limit_gets_429_with_a_chinese_message(bot: Bot) -> None:
    for _ in range(3):
        status, body, _ = await bot.say("u-1")
        assert status == 200 and body[0]["text"] == "您问的是：截止日期是什么时候"
    assert_too_many(*await bot.say("u-1"), kind="sender")
    status, body, _ = await bot.say("u-2")  # another sender from the same address: 4 of 5
    assert status == 200 and body[0]["recipient_id"] == "u-2"


async def test_an_address_over_its_limit_gets_429_whatever_the_sender(bot: Bot) -> None:
    for number in range(5):
        assert (await bot.say(f"s-{number}", client="10.0.0.2"))[0] == 200
    assert_too_many(*await bot.say("s-new", client="10.0.0.2"), kind="ip")
    assert_too_many(*await bot.say(None, client="10.0.0.2"), kind="ip")  # no sender: the address still counts
    assert (await bot.say("s-new", client="10.0.0.3"))[0] == 200  # another address is not affected


async def test_the_widget_routes_count_against_the_address(bot: Bot) -> None:
    for _ in range(5):
        assert (await bot.post("/widget/session", {}, "10.0.0.4"))[0] == 404  # not mounted in this app
    assert_too_many(*await bot.post("/widget/session", {}, "10.0.0.4"), kind="ip")


async def test_a_client_cannot_choose_its_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEPU_TRUSTED_PROXIES", raising=False)  # the test client is no proxy now
    started = await Bot(RateLimiter(sender=None, ip=Limit(2, 3600), exempt=())).start()
    try:
        for number in range(2):
            assert (await started.say("x", client=f"10.9.0.{number}"))[0] == 200
        assert_too_many(*await started.say("x", client="10.9.0.9"), kind="ip")
    finally:
        await started.stop()


async def test_exempt_addresses_are_never_limited(proxied: None) -> None:
    started = await Bot(RateLimiter(sender=Limit(1, 3600), ip=Limit(1, 3600),
                                    exempt=parse_networks("10.1.0.0/16"))).start()
    try:
        for _ in range(5):
            assert (await started.say("same", client="10.1.2.3"))[0] == 200
        assert (await started.say("same", client="10.2.0.1"))[0] == 200
        assert (await started.say("same", client="10.2.0.1"))[0] == 429
    finally:
        await started.stop()


async def test_normal_use_with_the_default_limits_is_not_limited(proxied: None) -> None:
    """Twenty users of one office (one address), each asking ten questions in a row."""
    started = await Bot(RateLimiter(exempt=())).start()
    try:
        statuses = [(await started.say(f"office-{user}", client="10.3.0.1"))[0]
                    for user in range(20) for _ in range(10)]
        assert statuses == [200] * 200
    finally:
        await started.stop()


async def test_malformed_bodies_are_still_the_channels_to_refuse(bot: Bot) -> None:
    assert bot.server is not None and bot.session is not None
    async with bot.session.post(f"{bot.server.base}/webhooks/rest/webhook", data=b"{not json",
                                headers={"X-Forwarded-For": "10.0.0.7"}) as resp:
        assert resp.status == 400 and "JSON" in (await resp.json())["error"]


async def test_replicas_on_one_redis_share_the_windows(proxied: None, redis_server: RedisServer) -> None:
    prefix = f"rl{free_port()}:"
    replicas = [await Bot(RateLimiter(sender=Limit(3, 3600), ip=Limit(100, 3600), exempt=(),
                                      windows=RedisWindows(redis_server.url, prefix))).start() for _ in range(2)]
    try:
        assert [(await replicas[n % 2].say("shared"))[0] for n in range(3)] == [200, 200, 200]
        assert_too_many(*await replicas[1].say("shared"), kind="sender")
        assert_too_many(*await replicas[0].say("shared"), kind="sender")
        assert (await replicas[0].say("other"))[0] == 200
    finally:
        for replica in replicas:
            await replica.stop()


async def test_without_redis_messages_go_through_and_the_log_says_why(
        proxied: None, caplog: pytest.LogCaptureFixture) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    started = await Bot(RateLimiter(sender=Limit(1, 3600), exempt=(), windows=RedisWindows(nowhere))).start()
    try:
        with caplog.at_level(logging.ERROR, logger="bot.ratelimit"):
            assert [(await started.say("u"))[0] for _ in range(3)] == [200, 200, 200]
    finally:
        await started.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.ratelimit"]
    assert len(lines) == 1 and f"Redis {nowhere} does not answer" in lines[0]

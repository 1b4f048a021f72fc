"""The WeChat channel's per-user state (bot/channels/wechat/state.py), run against both
implementations: in this process, and in a redis-server this test session started itself on a free
port (`redis_server`, tests/channels/conftest.py; never the shared one on 6379), each test under a
key prefix of its own.

Then what the state is for: one access-token fetch for every client sharing it, answers the API did
not deliver going out with the user's next reply, and two channel instances on one Redis state
behaving like one channel (a retry on the other instance, "1" on the other instance, one token).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis_asyncio

from bot.channels.wechat.channel import WITH_PENDING, state_for
from bot.channels.wechat.client import WeChatApi
from bot.channels.wechat.settings import WeChatSettings, settings_from
from bot.channels.wechat.state import (
    ANSWERING,
    API,
    MAX_PENDING,
    PASSIVE,
    MemoryState,
    RedisState,
    Seen,
    StateUnavailable,
    Ttls,
    WeChatState,
)
from tests.channels.conftest import APP_ID, APP_SECRET, OPENID, FakeWeChatApi, next_msg_id, text_xml, wait_until
from tests.ports import free_port
from tests.servers import RedisServer

OTHER = "oOtherUser_1234567890abcdef"
SHORT = 0.3  # seconds: the TTL of the expiry tests


class StateFactory:
    """Makes states of one kind: `make_state(dedupe=0.3)`. Every Redis state of a test shares one
    prefix (replicas of one deployment); every memory state is a process of its own, so tests that
    share one memory state pass it around instead."""

    def __init__(self, kind: str, server: RedisServer | None, prefix: str) -> None:
        self.kind = kind
        self._server = server
        self.prefix = prefix
        self.made: list[WeChatState] = []

    def __call__(self, **ttls: float) -> WeChatState:
        state: WeChatState = (RedisState(self._server.url, self.prefix, Ttls(**ttls)) if self._server is not None
                              else MemoryState(Ttls(**ttls)))
        self.made.append(state)
        return state


@pytest.fixture(params=["memory", "redis"])
async def make_state(request: pytest.FixtureRequest) -> AsyncIterator[StateFactory]:
    """A StateFactory for each implementation; the Redis one on the session's own redis-server,
    under a prefix of this test's own whose keys are deleted afterwards."""
    if request.param == "memory":
        factory = StateFactory("memory", None, "")
    else:
        factory = StateFactory("redis", request.getfixturevalue("redis_server"), f"kepu-test:{uuid.uuid4().hex}:")
    yield factory
    for state in factory.made:
        await state.close()
    if factory.kind == "redis":
        await delete_keys(request.getfixturevalue("redis_server").url, factory.prefix)


async def delete_keys(url: str, prefix: str) -> None:
    client = redis_asyncio.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.close()


# -- message dedupe -----------------------------------------------------------------------------------

async def test_a_message_is_claimed_once_and_a_retry_learns_how_it_was_answered(make_state: StateFactory) -> None:
    state = make_state()
    assert await state.claim_message("msg:1") is None
    assert await state.claim_message("msg:1") == Seen(ANSWERING, "")
    assert await state.seen_message("msg:1") == Seen(ANSWERING, "")
    await state.settle_message("msg:1", Seen(PASSIVE, "活动登记填报的截止日期是2021年9月24日。"))
    assert await state.claim_message("msg:1") == Seen(PASSIVE, "活动登记填报的截止日期是2021年9月24日。")
    await state.settle_message("msg:1", Seen(API))
    assert await state.seen_message("msg:1") == Seen(API, "")
    assert await state.seen_message("msg:2") is None
    assert await state.claim_message("msg:2") is None


async def test_concurrent_claims_of_one_message_have_one_winner(make_state: StateFactory) -> None:
    states = [make_state() for _ in range(2)] if make_state.kind == "redis" else [make_state()]
    claims = await asyncio.gather(*(states[i % len(states)].claim_message("msg:7") for i in range(20)))
    assert claims.count(None) == 1
    assert all(seen == Seen() for seen in claims if seen is not None)


async def test_message_records_expire(make_state: StateFactory) -> None:
    state = make_state(dedupe=SHORT)
    assert await state.claim_message("msg:3") is None
    await asyncio.sleep(SHORT + 0.2)
    assert await state.seen_message("msg:3") is None
    assert await state.claim_message("msg:3") is None


# -- numbered buttons ------------------------------------------------------------------------------

async def test_buttons_are_per_user_and_replaced_by_the_next_reply(make_state: StateFactory) -> None:
    state = make_state()
    await state.remember_buttons(OPENID, ["/ask_deadline", "咨询电话和联系人是谁？"])
    assert await state.buttons(OPENID) == ["/ask_deadline", "咨询电话和联系人是谁？"]
    assert await state.buttons(OTHER) == []
    await state.remember_buttons(OPENID, ["/ask_venue"])
    assert await state.buttons(OPENID) == ["/ask_venue"]
    await state.remember_buttons(OPENID, [])  # a reply without buttons: "1" is just text again
    assert await state.buttons(OPENID) == []


async def test_buttons_expire(make_state: StateFactory) -> None:
    state = make_state(buttons=SHORT)
    await state.remember_buttons(OPENID, ["/ask_deadline"])
    await asyncio.sleep(SHORT + 0.2)
    assert await state.buttons(OPENID) == []


# -- pending deliveries ----------------------------------------------------------------------------

async def test_pending_messages_are_taken_once_in_order(make_state: StateFactory) -> None:
    state = make_state()
    await state.defer(OPENID, ["第一段。"])
    await state.defer(OPENID, ["第二段。", "第三段。"])
    await state.defer(OPENID, ["更早的一段。"], first=True)  # put back in front: it was due first
    await state.defer(OTHER, ["别人的。"])
    assert await state.take_pending(OPENID) == ["更早的一段。", "第一段。", "第二段。", "第三段。"]
    assert await state.take_pending(OPENID) == []
    await state.defer(OPENID, ["只发一次。"])
    taken = await asyncio.gather(*(state.take_pending(OPENID) for _ in range(5)))
    assert sorted(taken) == [[], [], [], [], ["只发一次。"]]
    assert await state.take_pending(OTHER) == ["别人的。"]


async def test_pending_messages_are_bounded_and_expire(make_state: StateFactory) -> None:
    state = make_state(pending=SHORT)
    await state.defer(OPENID, [f"第{i}段。" for i in range(MAX_PENDING + 5)])
    assert await state.take_pending(OPENID) == [f"第{i}段。" for i in range(5, MAX_PENDING + 5)]
    await state.defer(OPENID, ["过期的。"])
    await asyncio.sleep(SHORT + 0.2)
    assert await state.take_pending(OPENID) == []


# -- the access token and its refresh lease ----------------------------------------------------------

async def test_the_access_token_is_cached_per_account_until_its_ttl(make_state: StateFactory) -> None:
    state = make_state()
    assert await state.access_token(APP_ID) == ""
    await state.store_access_token(APP_ID, "ACCESS-1", SHORT)
    assert await state.access_token(APP_ID) == "ACCESS-1"
    assert await state.access_token("wxanotheraccount00") == ""
    await asyncio.sleep(SHORT + 0.2)
    assert await state.access_token(APP_ID) == ""


async def test_one_refresh_lease_at_a_time(make_state: StateFactory) -> None:
    state = make_state()
    lease = await state.lease_token_refresh(APP_ID)
    assert lease is not None
    assert await state.lease_token_refresh(APP_ID) is None
    other_account = await state.lease_token_refresh("wxanotheraccount00")
    assert other_account is not None
    await lease.release()
    again = await state.lease_token_refresh(APP_ID)
    assert again is not None
    await again.release()
    await other_account.release()


async def test_an_expired_lease_is_taken_over_and_its_late_release_frees_nothing(make_state: StateFactory) -> None:
    state = make_state(lease=SHORT)
    stuck = await state.lease_token_refresh(APP_ID)  # a replica that stalls while refreshing
    assert stuck is not None
    await asyncio.sleep(SHORT + 0.2)
    successor = await state.lease_token_refresh(APP_ID)
    assert successor is not None
    await stuck.release()  # too late: must not free the successor's lease
    assert await state.lease_token_refresh(APP_ID) is None
    await successor.release()


# -- the Redis state itself ------------------------------------------------------------------------

async def test_redis_state_keys_live_under_its_prefix_and_all_expire(redis_server: RedisServer,
                                                                     redis_prefix: str) -> None:
    state = RedisState(redis_server.url, redis_prefix)
    try:
        await state.claim_message("msg:9")
        await state.remember_buttons(OPENID, ["/ask_deadline"])
        await state.defer(OPENID, ["未送达。"])
        await state.store_access_token(APP_ID, "ACCESS-1", 7000)
        lease = await state.lease_token_refresh(APP_ID)
        client = redis_asyncio.Redis.from_url(redis_server.url)
        try:
            keys = sorted([key.decode() async for key in client.scan_iter(match=redis_prefix + "*")])
            ttls = [await client.pttl(key) for key in keys]
        finally:
            await client.close()
        assert keys == sorted(redis_prefix + name for name in (
            "msg:msg:9", f"buttons:{OPENID}", f"pending:{OPENID}", f"token:{APP_ID}", f"token-lease:{APP_ID}"))
        assert all(ttl > 0 for ttl in ttls), dict(zip(keys, ttls, strict=True))
        assert lease is not None
        await lease.release()
    finally:
        await state.close()


async def test_unreachable_redis_state_says_so() -> None:
    state = RedisState(f"redis://127.0.0.1:{free_port()}/0", "kepu-test:", timeout=0.5)
    try:
        for step in (state.claim_message("msg:1"), state.buttons(OPENID), state.take_pending(OPENID),
                     state.access_token(APP_ID), state.lease_token_refresh(APP_ID)):
            with pytest.raises(StateUnavailable):
                await step
    finally:
        await state.close()


def test_the_state_is_chosen_by_the_environment() -> None:
    assert isinstance(state_for(settings_from({}, {})), MemoryState)
    settings = settings_from({"buttons_ttl": 60, "pending_ttl": 120},
                             {"WECHAT_STATE": "redis", "WECHAT_REDIS_URL": "redis://r:6379/3",
                              "WECHAT_STATE_PREFIX": "p:"})
    state = state_for(settings)
    assert isinstance(state, RedisState) and state.prefix == "p:"
    assert state.ttls == Ttls(dedupe=300.0, buttons=60.0, pending=120.0, lease=settings.http_timeout + 5)
    assert isinstance(state_for(settings_from({"state": "redis"}, {"WECHAT_STATE": "memory"})), MemoryState)
    assert settings_from({"state": "redis"}, {}).state == "redis"
    assert settings_from({}, {"WECHAT_STATE": "etcd"}).state == "memory"
    assert settings_from({}, {}).state_prefix == "kepu:wechat:state:"


# -- one token fetch for everyone sharing the state --------------------------------------------------

def api_client(fake: FakeWeChatApi, state: WeChatState) -> WeChatApi:
    settings = WeChatSettings(app_id=APP_ID, app_secret=APP_SECRET, api_base=fake.url, http_timeout=5.0)
    return WeChatApi(settings, state)


async def test_clients_sharing_a_state_fetch_the_token_once(make_state: StateFactory, fake_api: FakeWeChatApi) -> None:
    """Two clients (replicas with Redis; coroutines of one process with memory), ten concurrent
    requests for a token while WeChat takes 0.3 s to answer: one fetch, one token for all."""
    shared = make_state()
    other = make_state() if make_state.kind == "redis" else shared
    clients = [api_client(fake_api, shared), api_client(fake_api, other)]
    fake_api.token_delay = 0.3
    try:
        tokens = await asyncio.gather(*(clients[i % 2].access_token() for i in range(10)))
        assert tokens == ["ACCESS-1"] * 10
        assert len(fake_api.token_calls) == 1
        # WeChat rejected ACCESS-1: both ask for another at once; one fetch, and no one fetches again
        renewed = await asyncio.gather(*(client.access_token(stale="ACCESS-1") for client in clients))
        assert renewed == ["ACCESS-2", "ACCESS-2"]
        assert await clients[1].access_token(stale="ACCESS-1") == "ACCESS-2"
        assert len(fake_api.token_calls) == 2
    finally:
        for client in clients:
            await client.close()


async def test_a_failed_fetch_frees_the_lease(make_state: StateFactory, fake_api: FakeWeChatApi) -> None:
    state = make_state()
    settings = WeChatSettings(app_id=APP_ID, app_secret="wrong-secret", api_base=fake_api.url)
    client = WeChatApi(settings, state)
    try:
        assert not await client.send_text(OPENID, "你好")  # 40013 from the fake: logged, not sent
        assert await state.lease_token_refresh(APP_ID) is not None
    finally:
        await client.close()


# -- pending deliveries through the channel --------------------------------------------------------

async def test_a_reply_the_api_did_not_deliver_goes_out_with_the_next_answer(wechat: Any) -> None:
    wx = await wechat(passive_timeout=0.5)
    wx.rasa.delay = 0.8
    wx.api.send_errors = [45015]  # the user had been silent for 48 hours
    assert (await wx.post(text_xml("慢问题"))).body == "success"
    await wx.channel.settled(5)  # answered, refused by the API, kept
    assert len(wx.api.sends) == 1
    wx.rasa.delay = 0.0
    reply = await wx.post(text_xml("新问题"))
    assert reply.content == WITH_PENDING.format(earlier="您问的是：慢问题", answer="您问的是：新问题")
    assert (await wx.post(text_xml("再问一个"))).content == "您问的是：再问一个"  # delivered once
    assert wx.api.delivered == []


async def test_without_api_credentials_a_slow_answer_waits_for_the_next_message(wechat: Any) -> None:
    wx = await wechat(passive_timeout=0.5, app_secret="")
    wx.rasa.delay = 0.8
    xml = text_xml("慢问题", msg_id=next_msg_id())
    assert (await wx.post(xml)).body == "success"
    await wx.channel.settled(5)
    wx.rasa.delay = 0.0
    reply = await wx.post(text_xml("在吗"))
    assert reply.content == WITH_PENDING.format(earlier="您问的是：慢问题", answer="您问的是：在吗")
    assert (await wx.post(xml)).body == "success"  # a late retry of the slow one is not answered again
    assert wx.rasa.texts == ["慢问题", "在吗"] and wx.api.sends == [] and wx.api.token_calls == []


# -- two channel instances, one Redis state ---------------------------------------------------------

BUTTONS = [{"title": "活动登记填报截止到什么时候？", "payload": "/ask_deadline"},
           {"title": "咨询电话和联系人是谁？", "payload": "/ask_contact"}]


def offering_buttons(text: str) -> list[dict[str, Any]]:
    if text == "那个":
        return [{"text": "您是想问下面哪个问题吗？", "buttons": BUTTONS}]
    return [{"text": f"您问的是：{text}"}]


async def two_channels(wechat: Any, **settings: Any) -> tuple[Any, Any]:
    first, second = await wechat(passive_timeout=0.5, **settings), await wechat(passive_timeout=0.5, **settings)
    assert first.channel.state is not second.channel.state
    for wx in (first, second):
        wx.rasa.reply = offering_buttons
    return first, second


async def test_two_channels_sharing_a_redis_state_behave_like_one(wechat: Any, redis_server: RedisServer,
                                                                 redis_prefix: str) -> None:
    first, second = await two_channels(wechat, state="redis", nonce_store="redis", redis_url=redis_server.url,
                                       state_prefix=redis_prefix + "state:", redis_prefix=redis_prefix + "nonce:")
    # WeChat's retry of an answered message lands on the other instance: the same reply, Rasa asked once
    xml = text_xml("截止日期是什么时候", msg_id=next_msg_id())
    assert (await first.post(xml)).content == "您问的是：截止日期是什么时候"
    assert (await second.post(xml)).content == "您问的是：截止日期是什么时候"
    assert first.rasa.texts == ["截止日期是什么时候"] and second.rasa.calls == []

    # the buttons were shown by one instance, "1" reaches the other: the same item
    assert "回复 2 查看：咨询电话和联系人是谁？" in (await first.post(text_xml("那个"))).content
    await second.post(text_xml("1"))
    assert second.rasa.texts == ["/ask_deadline"] and second.rasa.calls[-1].metadata["wechat"]["button"] is True

    # two slow answers at once, one on each instance, while WeChat takes 0.3 s for a token: one fetch
    first.api.token_delay = 0.3
    first.rasa.delay = second.rasa.delay = 0.9
    slow = text_xml("慢问题一", msg_id=next_msg_id())
    replies = await asyncio.gather(first.post(slow), second.post(text_xml("慢问题二", openid=OTHER)))
    assert [reply.body for reply in replies] == ["success", "success"]
    assert (await second.post(slow)).body == "success"  # a retry while the first instance is still answering
    assert await wait_until(lambda: len(first.api.delivered) == 2, timeout=5)
    assert sorted(first.api.delivered) == ["您问的是：慢问题一", "您问的是：慢问题二"]
    assert len(first.api.token_calls) == 1
    assert {send["access_token"] for send in first.api.sends} == {"ACCESS-1"}
    assert first.rasa.texts.count("慢问题一") == 1 and "慢问题一" not in second.rasa.texts

    # an answer the API refused on one instance goes out with the next reply on the other
    first.rasa.delay, second.rasa.delay, first.api.send_errors = 0.9, 0.0, [45015]
    assert (await first.post(text_xml("又一个慢问题"))).body == "success"
    await first.channel.settled(5)
    assert len(first.api.sends) == 3
    reply = await second.post(text_xml("还在吗"))
    assert reply.content == WITH_PENDING.format(earlier="您问的是：又一个慢问题", answer="您问的是：还在吗")


async def test_two_channels_with_memory_state_each_keep_their_own(wechat: Any) -> None:
    """The control of the test above: in-process state is not shared, which is why several replicas
    need WECHAT_STATE=redis (docs/wechat.md, section 7)."""
    first, second = await two_channels(wechat)
    xml = text_xml("截止日期是什么时候", msg_id=next_msg_id())
    await first.post(xml)
    await second.post(xml)
    assert first.rasa.texts == second.rasa.texts == ["截止日期是什么时候"]  # answered twice
    await first.post(text_xml("那个"))
    await second.post(text_xml("1"))
    assert second.rasa.texts[-1] == "1"  # the other instance never showed those buttons

"""The WeChat channel's per-user state, behind one small interface (`WeChatState`).

Four things outlive one request and must be the same on every replica that serves the account:

- message dedupe: WeChat retries a message it got no answer to (same MsgId, new signature). The
  first replica to `claim_message` answers it; a retry, on any replica, is told how it was
  answered (`Seen`): the same passive reply again, or "success" while it is still being answered
  or went out through the customer-service API;
- numbered buttons: "回复 1" means item 1 of the last reply that user got, wherever it was shown;
- the access token: one replica refreshes it while holding a lease, the others wait for it and
  read the cached one. Each fetch of a new token starts the old one's end, so replicas fetching
  on their own would invalidate each other's tokens (40001 churn);
- pending deliveries: parts of answers the customer-service API did not deliver (too slow for the
  passive reply, then refused or not configured), sent with the user's next passive reply.

`MemoryState` keeps them in this process (the default: one replica, `make run`); `RedisState`
shares them in Redis (WECHAT_STATE=redis, WECHAT_REDIS_URL, keys under WECHAT_STATE_PREFIX).

How long each is kept (`Ttls`, from credentials.yml):

| what      | default | why |
|-----------|---------|-----|
| dedupe    | 300 s   | WeChat retries three times within about 15 s; the margin covers slow answers |
| buttons   | 1800 s  | a numbered choice is read and answered within minutes; later "1" is just text |
| pending   | 3600 s  | answers may say "还有N天": an hour keeps them right, and a user who comes back |
|           |         | later asks again anyway; at most MAX_PENDING messages per user |
| token     | WeChat's expires_in (7200 s) less token_margin (300 s), at least 60 s |
| lease     | http_timeout + 5 s | longer than one token fetch; a replica that dies holding it |
|           |         | blocks the others no longer than that |
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)

ANSWERING, PASSIVE, API = "", "passive", "api"  # how a message was (or is being) answered
MAX_PENDING = 10  # undelivered messages kept per user (the oldest go first)


@dataclass(frozen=True)
class Ttls:
    """Seconds each kind of state is kept (see the module docstring)."""

    dedupe: float = 300.0
    buttons: float = 1800.0
    pending: float = 3600.0
    lease: float = 15.0


@dataclass(frozen=True)
class Seen:
    """How a message is answered: ANSWERING (no decision yet), PASSIVE with the reply sent, or API."""

    delivery: str = ANSWERING
    reply: str = ""  # the passive reply; a retry gets exactly this again ('' = "success")


class StateUnavailable(Exception):
    """The shared state cannot be reached."""


class Lease(Protocol):
    """The right to refresh the access token, until released or expired."""

    async def release(self) -> None:
        """Give the right up (nothing happens when it has expired and another holds it)."""


class WeChatState(Protocol):
    """What the channel and its API client remember between requests; every method may raise
    StateUnavailable."""

    ttls: Ttls

    async def claim_message(self, key: str) -> Seen | None:
        """None when `key` is new (now claimed: Seen(ANSWERING)), else how it is being answered."""

    async def settle_message(self, key: str, seen: Seen) -> None:
        """Record how the claimed message `key` was answered."""

    async def seen_message(self, key: str) -> Seen | None:
        """How `key` is being answered, or None when it is unknown (or forgotten)."""

    async def remember_buttons(self, openid: str, payloads: list[str]) -> None:
        """The payloads of the numbered buttons just shown to the user (none: forget them)."""

    async def buttons(self, openid: str) -> list[str]:
        """The payloads of the buttons last shown to the user, [] when none (or expired)."""

    async def defer(self, openid: str, parts: list[str], first: bool = False) -> None:
        """Keep undelivered messages for the user, after the ones kept already (before them: `first`)."""

    async def take_pending(self, openid: str) -> list[str]:
        """The user's undelivered messages, oldest first, removed at once (one taker gets them)."""

    async def access_token(self, app_id: str) -> str:
        """The cached access token of the account, '' when none."""

    async def store_access_token(self, app_id: str, token: str, ttl: float) -> None:
        """Cache a freshly fetched access token for `ttl` seconds."""

    async def lease_token_refresh(self, app_id: str) -> Lease | None:
        """The token-refresh lease of the account, or None while someone else holds it."""

    async def close(self) -> None:
        """Release connections."""


# -- in this process ----------------------------------------------------------

class _Expiring:
    """A bounded map whose entries expire (checked on read; the oldest go first when full)."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._max = max_entries
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str) -> Any:
        entry = self._items.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._items[key]
            return None
        return entry[1]

    def put(self, key: str, value: Any, ttl: float) -> None:
        self._items.pop(key, None)
        self._items[key] = (self._clock() + ttl, value)
        now = self._clock()
        while self._items:
            oldest, (expires, _) = next(iter(self._items.items()))
            if expires > now and len(self._items) <= self._max:
                break
            del self._items[oldest]

    def pop(self, key: str) -> Any:
        value = self.get(key)
        self._items.pop(key, None)
        return value


class _MemoryLease:
    def __init__(self, leases: _Expiring, name: str) -> None:
        self._leases = leases
        self._name = name
        self._owner = uuid.uuid4().hex

    async def release(self) -> None:
        if self._leases.get(self._name) == self._owner:
            self._leases.pop(self._name)


class MemoryState:
    """The state in this process only. Every method runs without awaiting, so each is atomic
    within the event loop."""

    def __init__(self, ttls: Ttls | None = None, max_users: int = 10_000, max_messages: int = 20_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttls = ttls or Ttls()
        self._messages = _Expiring(max_messages, clock)
        self._buttons = _Expiring(max_users, clock)
        self._pending = _Expiring(max_users, clock)
        self._tokens = _Expiring(100, clock)
        self._leases = _Expiring(100, clock)

    async def claim_message(self, key: str) -> Seen | None:
        """See WeChatState.claim_message."""
        seen = self._messages.get(key)
        if seen is None:
            self._messages.put(key, Seen(), self.ttls.dedupe)
        return seen

    async def settle_message(self, key: str, seen: Seen) -> None:
        """See WeChatState.settle_message."""
        self._messages.put(key, seen, self.ttls.dedupe)

    async def seen_message(self, key: str) -> Seen | None:
        """See WeChatState.seen_message."""
        return self._messages.get(key)

    async def remember_buttons(self, openid: str, payloads: list[str]) -> None:
        """See WeChatState.remember_buttons."""
        if payloads:
            self._buttons.put(openid, list(payloads), self.ttls.buttons)
        else:
            self._buttons.pop(openid)

    async def buttons(self, openid: str) -> list[str]:
        """See WeChatState.buttons."""
        return list(self._buttons.get(openid) or [])

    async def defer(self, openid: str, parts: list[str], first: bool = False) -> None:
        """See WeChatState.defer."""
        kept = self._pending.get(openid) or []
        merged = [*parts, *kept] if first else [*kept, *parts]
        if merged:
            self._pending.put(openid, merged[-MAX_PENDING:], self.ttls.pending)

    async def take_pending(self, openid: str) -> list[str]:
        """See WeChatState.take_pending."""
        return list(self._pending.pop(openid) or [])

    async def access_token(self, app_id: str) -> str:
        """See WeChatState.access_token."""
        return self._tokens.get(app_id) or ""

    async def store_access_token(self, app_id: str, token: str, ttl: float) -> None:
        """See WeChatState.store_access_token."""
        self._tokens.put(app_id, token, ttl)

    async def lease_token_refresh(self, app_id: str) -> Lease | None:
        """See WeChatState.lease_token_refresh."""
        if self._leases.get(app_id) is not None:
            return None
        lease = _MemoryLease(self._leases, app_id)
        self._leases.put(app_id, lease._owner, self.ttls.lease)
        return lease

    async def close(self) -> None:
        """Nothing to release."""


# -- in Redis ---------------------------------------------------------------

def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _seen(raw: bytes | None) -> Seen | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return Seen(str(data["delivery"]), str(data["reply"]))
    except (ValueError, KeyError, TypeError):
        return Seen()  # unreadable: treat it as being answered, never as new


def _texts(raw: Any) -> list[str]:
    return [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item) for item in raw or []]


class _RedisLease:
    def __init__(self, lock: Any) -> None:
        self._lock = lock

    async def release(self) -> None:
        from redis.exceptions import LockError, RedisError

        try:
            await self._lock.release()
        except LockError:  # expired (and perhaps taken by another replica): nothing of ours to release
            logger.warning("wechat: the token-refresh lease had expired before it was released")
        except (RedisError, OSError) as exc:  # it expires by itself
            logger.warning("wechat: could not release the token-refresh lease: %s", type(exc).__name__)


class RedisState:
    """The state shared by several replicas in Redis, under `prefix`; every key expires by itself.

    Keys: msg:<MsgId key> (JSON Seen), buttons:<OpenID> (JSON list), pending:<OpenID> (a list),
    token:<AppID>, token-lease:<AppID> (redis-py's Lock: SET NX PX, released by a Lua check of
    its owner)."""

    def __init__(self, url: str, prefix: str, ttls: Ttls | None = None, timeout: float = 2.0) -> None:
        self.ttls = ttls or Ttls()
        self.prefix = prefix
        self._url = url
        self._timeout = timeout
        self._client: Any = None

    @property
    def redis(self) -> Any:
        """The asyncio Redis client, created on first use (inside the running loop)."""
        if self._client is None:
            import redis.asyncio as redis_asyncio

            self._client = redis_asyncio.Redis.from_url(self._url, socket_timeout=self._timeout,
                                                        socket_connect_timeout=self._timeout)
        return self._client

    @asynccontextmanager
    async def _reach(self) -> AsyncIterator[Any]:
        from redis.exceptions import RedisError

        try:
            yield self.redis
        except (RedisError, OSError) as exc:
            raise StateUnavailable(type(exc).__name__) from exc

    async def claim_message(self, key: str) -> Seen | None:
        """See WeChatState.claim_message: SET NX PX, then GET how a known message is answered."""
        name = f"{self.prefix}msg:{key}"
        fresh = json.dumps({"delivery": ANSWERING, "reply": ""})
        async with self._reach() as redis:
            for _ in range(2):  # a known key may expire between SET and GET: then claim again
                if await redis.set(name, fresh, nx=True, px=_ms(self.ttls.dedupe)):
                    return None
                seen = _seen(await redis.get(name))
                if seen is not None:
                    return seen
        return Seen()

    async def settle_message(self, key: str, seen: Seen) -> None:
        """See WeChatState.settle_message."""
        value = json.dumps({"delivery": seen.delivery, "reply": seen.reply}, ensure_ascii=False)
        async with self._reach() as redis:
            await redis.set(f"{self.prefix}msg:{key}", value, px=_ms(self.ttls.dedupe))

    async def seen_message(self, key: str) -> Seen | None:
        """See WeChatState.seen_message."""
        async with self._reach() as redis:
            return _seen(await redis.get(f"{self.prefix}msg:{key}"))

    async def remember_buttons(self, openid: str, payloads: list[str]) -> None:
        """See WeChatState.remember_buttons."""
        name = f"{self.prefix}buttons:{openid}"
        async with self._reach() as redis:
            if payloads:
                await redis.set(name, json.dumps(list(payloads), ensure_ascii=False), px=_ms(self.ttls.buttons))
            else:
                await redis.delete(name)

    async def buttons(self, openid: str) -> list[str]:
        """See WeChatState.buttons."""
        async with self._reach() as redis:
            raw = await redis.get(f"{self.prefix}buttons:{openid}")
        try:
            payloads = json.loads(raw) if raw is not None else []
        except ValueError:
            return []
        return [p for p in payloads if isinstance(p, str)] if isinstance(payloads, list) else []

    async def defer(self, openid: str, parts: list[str], first: bool = False) -> None:
        """See WeChatState.defer: one MULTI of RPUSH (LPUSH for `first`), LTRIM and PEXPIRE."""
        if not parts:
            return
        name = f"{self.prefix}pending:{openid}"
        async with self._reach() as redis, redis.pipeline(transaction=True) as pipe:
            if first:
                pipe.lpush(name, *reversed(parts))
            else:
                pipe.rpush(name, *parts)
            pipe.ltrim(name, -MAX_PENDING, -1)
            pipe.pexpire(name, _ms(self.ttls.pending))
            await pipe.execute()

    async def take_pending(self, openid: str) -> list[str]:
        """See WeChatState.take_pending: LRANGE and DEL in one MULTI."""
        name = f"{self.prefix}pending:{openid}"
        async with self._reach() as redis, redis.pipeline(transaction=True) as pipe:
            pipe.lrange(name, 0, -1)
            pipe.delete(name)
            parts, _ = await pipe.execute()
        return _texts(parts)

    async def access_token(self, app_id: str) -> str:
        """See WeChatState.access_token."""
        async with self._reach() as redis:
            raw = await redis.get(f"{self.prefix}token:{app_id}")
        return raw.decode("utf-8", "replace") if raw else ""

    async def store_access_token(self, app_id: str, token: str, ttl: float) -> None:
        """See WeChatState.store_access_token."""
        async with self._reach() as redis:
            await redis.set(f"{self.prefix}token:{app_id}", token, px=_ms(ttl))

    async def lease_token_refresh(self, app_id: str) -> Lease | None:
        """See WeChatState.lease_token_refresh (redis-py's Lock, not blocking)."""
        async with self._reach() as redis:
            lock = redis.lock(f"{self.prefix}token-lease:{app_id}", timeout=self.ttls.lease, blocking=False)
            if await lock.acquire():
                return _RedisLease(lock)
        return None

    async def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.close()
            await self._client.connection_pool.disconnect()
            self._client = None


def make_state(kind: str, redis_url: str, prefix: str, ttls: Ttls) -> WeChatState:
    """The configured state: "redis" (shared by replicas) or "memory" (this process)."""
    if kind == "redis":
        return RedisState(redis_url, prefix, ttls)
    return MemoryState(ttls)

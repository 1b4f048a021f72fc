"""Replay protection of the WeChat channel: the timestamp window and the nonce memory.

WeChat signs only (token, timestamp, nonce) in plaintext mode, not the body, so a captured
(signature, timestamp, nonce) would otherwise forge any message forever; an encrypted request
would replay as a new turn once the dedupe window has passed. Two checks close that:

- `fresh()`: the signed timestamp is a plain Unix time (`[1-9][0-9]{0,11}`, nothing else) at
  most `window` seconds from the server's clock;
- a nonce store: each URL signature is claimed for the request it first came with.
  WeChat's own retries repeat the same request and are answered by the channel's dedupe; the
  same signature with any other body, or a URL check's signature on a message, is a replay.

The key is the signature, not the raw "timestamp:nonce": the signature hashes the sorted
concatenation of (token, timestamp, nonce), so the same signed characters split differently
(timestamp "0"+ts with the nonce one "0" shorter) would be a new "timestamp:nonce" under the very
same signature. The strict timestamp pattern refuses such splits as well. The msg_signature of safe
mode is not part of the key: a captured safe-mode signature must not become new when replayed as a
plaintext message (which has no msg_signature).

The store is in-process by default (`MemoryNonceStore`); several replicas share one in Redis
(`RedisNonceStore`, `SET key value NX PX`). A signature is remembered for twice the window: a
timestamp can lie up to one window in the future and stays acceptable one window after now.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger(__name__)

_TIMESTAMP = re.compile(r"[1-9][0-9]{0,11}")  # fullmatch: no sign, no leading zero, no newline


class NonceStoreUnavailable(Exception):
    """The shared nonce store cannot be reached; the request cannot be checked."""


def fresh(timestamp: str, window: float, now: float | None = None) -> bool:
    """Whether a signed Unix timestamp (plain decimal digits) is within `window` seconds of now."""
    if not _TIMESTAMP.fullmatch(timestamp):
        return False
    current = time.time() if now is None else now
    return abs(current - int(timestamp)) <= window


class NonceStore(Protocol):
    """Where the signatures of accepted requests are remembered."""

    async def claim(self, key: str, owner: str, ttl: float) -> str | None:
        """Remember `key` for `owner` for `ttl` seconds; None when it was new, else its first owner."""

    async def close(self) -> None:
        """Release connections."""


class MemoryNonceStore:
    """Nonces in this process only (one replica, or replicas that each see their own users)."""

    def __init__(self, max_entries: int = 200_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_entries
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def _prune(self, now: float) -> None:
        while self._items:
            key, (expires, _) = next(iter(self._items.items()))
            if expires > now and len(self._items) <= self._max:
                return
            if expires > now:
                logger.warning("wechat: nonce memory full (%d); forgetting the oldest early", self._max)
            self._items.pop(key)

    async def claim(self, key: str, owner: str, ttl: float) -> str | None:
        """See NonceStore.claim; expiry order is insertion order because every ttl is the same."""
        now = self._clock()
        self._prune(now)
        known = self._items.get(key)
        if known is not None:
            return known[1]
        self._items[key] = (now + ttl, owner)
        return None

    async def close(self) -> None:
        """Nothing to release."""


class RedisNonceStore:
    """Nonces shared by several replicas in Redis, under `prefix` (keys expire by themselves)."""

    def __init__(self, url: str, prefix: str, timeout: float = 2.0) -> None:
        import redis.asyncio as redis_asyncio

        self._redis = redis_asyncio.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.prefix = prefix

    async def claim(self, key: str, owner: str, ttl: float) -> str | None:
        """See NonceStore.claim: one atomic SET NX PX, then GET for the owner of a known nonce."""
        from redis.exceptions import RedisError

        name = self.prefix + key
        try:
            for _ in range(2):  # a known key may expire between SET and GET: then claim again
                if await self._redis.set(name, owner, nx=True, px=max(1, int(ttl * 1000))):
                    return None
                known = await self._redis.get(name)
                if known is not None:
                    return known.decode("utf-8", "replace")
        except (RedisError, OSError) as exc:
            raise NonceStoreUnavailable(type(exc).__name__) from exc
        return ""

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.close()
        await self._redis.connection_pool.disconnect()


def make_nonce_store(kind: str, redis_url: str, redis_prefix: str) -> NonceStore:
    """The configured store: "redis" (shared) or "memory" (this process)."""
    if kind == "redis":
        return RedisNonceStore(redis_url, redis_prefix)
    return MemoryNonceStore()

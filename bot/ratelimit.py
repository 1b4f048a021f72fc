"""Rate limits on the public message routes: per sender and per client address, 429 when exceeded.

A sliding window: a request is let through when fewer than `count` requests of the same key were
let through in the last `seconds`; refused requests are not counted, so a user who waits gets in
again. Each request is checked against every limit that applies to it at once (its address, and
for the REST channel its `sender`), atomically: in this process (`MemoryWindows`, `make run`) or in
Redis (`RedisWindows`, one Lua script per request, shared by every replica of `make run-cluster`).

Settings (environment, read once at start):

    KEPU_RATE_LIMIT_SENDER     messages per sender: COUNT/SECONDS, `off` for none      30/60
    KEPU_RATE_LIMIT_IP         requests per client address (REST, widget session and
                               feedback): COUNT/SECONDS, `off` for none                 300/60
    KEPU_RATE_LIMIT_EXEMPT     addresses or networks never limited (this machine's own
                               tools: eval, bench, health checks); empty for none       127.0.0.1,::1
    KEPU_RATE_LIMIT_STORE      `memory` (this process) or `redis` (shared by replicas)  memory
    KEPU_RATE_LIMIT_REDIS_URL  redis://[:password@]host:port/db for `redis`             WECHAT_REDIS_URL
    KEPU_RATE_LIMIT_PREFIX     Redis key prefix                                         kepu:ratelimit:

The client address is the TCP peer, or behind a proxy of KEPU_TRUSTED_PROXIES the address that
proxy saw (bot/web/proxies.py), so a client cannot pick its own. WeChat's webhook is not limited
here: its requests come from WeChat's servers and are signed (bot/channels/wechat).

When Redis does not answer, requests are let through (a guard rail, not a gate) and one log line
says so, at most every 30 seconds; the Redis client gives up after 0.5 s, so a request never hangs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.web.proxies import Network, client_address, is_trusted, parse_networks, trusted_proxies

logger = logging.getLogger(__name__)

REST_WEBHOOK = "/webhooks/rest/webhook"
ADDRESS_LIMITED = frozenset({REST_WEBHOOK, "/widget/session", "/widget/feedback"})
TOO_MANY = "您发送得太频繁了，请{seconds}秒后再试。如需帮助，请拨打{phone}。"
REDIS_TIMEOUT_SECONDS = 0.5
WARN_EVERY_SECONDS = 30.0


class LimitSyntaxError(ValueError):
    """A limit that is neither COUNT/SECONDS nor `off`."""


@dataclass(frozen=True)
class Limit:
    """At most `count` requests in any `seconds`."""

    count: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Limit | None:
        """`30/60` -> Limit(30, 60.0); `off`, `0` or empty -> None (no limit)."""
        text = text.strip().lower()
        if text in ("", "off", "0", "none"):
            return None
        count, _, seconds = text.partition("/")
        try:
            limit = cls(int(count), float(seconds or "60"))
        except ValueError:
            raise LimitSyntaxError(f"not COUNT/SECONDS: {text!r}") from None
        if limit.count < 1 or not (0 < limit.seconds < math.inf):
            raise LimitSyntaxError(f"COUNT and SECONDS must be positive: {text!r}")
        return limit


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: which limit and how long until one more request is let through."""

    kind: str  # "sender" or "ip"
    retry_after: float


class MemoryWindows:
    """Sliding windows in this process: for each key, the times of its last admitted requests."""

    SWEEP_EVERY = 1024

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._longest = 0.0
        self._checks = 0

    async def admit(self, keyed: list[tuple[str, Limit]]) -> tuple[int, float] | None:
        """None when every key has room (then one request is counted on each); else (index of the
        first full key, seconds until it has room) and nothing is counted."""
        now = self.clock()
        self._sweep(now)
        windows = []
        for index, (key, limit) in enumerate(keyed):
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - limit.seconds:
                hits.popleft()
            if len(hits) >= limit.count:
                return index, hits[0] + limit.seconds - now
            windows.append(hits)
            self._longest = max(self._longest, limit.seconds)
        for hits in windows:
            hits.append(now)
        return None

    def _sweep(self, now: float) -> None:
        """Every SWEEP_EVERY checks, forget keys with no admitted request inside the longest window."""
        self._checks += 1
        if self._checks % self.SWEEP_EVERY:
            return
        stale = [key for key, hits in self._hits.items() if not hits or hits[-1] <= now - self._longest]
        for key in stale:
            del self._hits[key]


# KEYS: one sorted set per limit. ARGV: a unique member, then (count, window ms) per key.
# Returns {-1} when admitted (counted on every key), else {index (0-based), ms until room}.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= count then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {i - 1, tonumber(oldest[2]) + window - now}
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i + 1]))
end
return {-1, 0}
"""


class RedisWindows:
    """The same sliding windows in Redis (sorted sets of admission times, Redis's own clock), so
    every replica counts the same requests. Lets requests through while Redis does not answer."""

    def __init__(self, url: str, prefix: str = "kepu:ratelimit:") -> None:
        self.url = url
        self.prefix = prefix
        self._clients: dict[int, Any] = {}  # the script per event loop: connections belong to one loop
        self._sequence = 0
        self._warned_at = -math.inf

    def _client(self) -> Any:
        import redis.asyncio as redis_asyncio

        loop = id(asyncio.get_running_loop())
        if loop not in self._clients:
            client = redis_asyncio.Redis.from_url(
                self.url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
            self._clients[loop] = client.register_script(_ADMIT)
        return self._clients[loop]

    async def admit(self, keyed: list[tuple[str, Limit]]) -> tuple[int, float] | None:
        """As MemoryWindows.admit, in Redis; None (let through) when Redis fails."""
        import redis

        script = self._client()
        self._sequence += 1
        member = f"{os.getpid()}:{id(self)}:{self._sequence}"
        args: list[Any] = [member]
        for _, limit in keyed:
            args += [limit.count, int(limit.seconds * 1000)]
        try:
            index, wait_ms = await script(keys=[self.prefix + key for key, _ in keyed], args=args)
        except (redis.RedisError, OSError, asyncio.TimeoutError) as exc:
            self._warn(exc)
            return None
        return None if int(index) < 0 else (int(index), int(wait_ms) / 1000)

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            logger.error("rate limit: Redis %s does not answer (%s: %s); messages are let through "
                         "without rate limits until it does", _redacted(self.url), type(exc).__name__, exc)


def _redacted(url: str) -> str:
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@") if password else url


def _windows(environ: Mapping[str, str]) -> MemoryWindows | RedisWindows:
    store = environ.get("KEPU_RATE_LIMIT_STORE", "memory").strip().lower()
    if store == "memory":
        return MemoryWindows()
    url = (environ.get("KEPU_RATE_LIMIT_REDIS_URL") or environ.get("WECHAT_REDIS_URL") or "").strip()
    if store != "redis" or not url:
        raise LimitSyntaxError(f"KEPU_RATE_LIMIT_STORE must be memory or redis (with KEPU_RATE_LIMIT_REDIS_URL "
                               f"or WECHAT_REDIS_URL set): {store!r}")
    return RedisWindows(url, environ.get("KEPU_RATE_LIMIT_PREFIX", "kepu:ratelimit:"))


@dataclass
class RateLimiter:
    """The limits and the windows that count them."""

    sender: Limit | None = Limit(30, 60)
    ip: Limit | None = Limit(300, 60)
    exempt: tuple[Network, ...] = field(default_factory=lambda: parse_networks("127.0.0.1,::1"))
    windows: Any = field(default_factory=MemoryWindows)  # MemoryWindows or RedisWindows

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RateLimiter:
        """The settings of the module docstring; LimitSyntaxError for a malformed limit."""
        return cls(sender=Limit.parse(environ.get("KEPU_RATE_LIMIT_SENDER", "30/60")),
                   ip=Limit.parse(environ.get("KEPU_RATE_LIMIT_IP", "300/60")),
                   exempt=parse_networks(environ.get("KEPU_RATE_LIMIT_EXEMPT", "127.0.0.1,::1")),
                   windows=_windows(environ))

    async def check(self, address: str, sender: str | None) -> Refusal | None:
        """None when the request may go on (and is counted), else the refusal."""
        if is_trusted(address, self.exempt):
            return None
        keyed: list[tuple[str, Limit]] = []
        kinds: list[str] = []
        if self.ip is not None:
            keyed.append((f"ip:{address}", self.ip))
            kinds.append("ip")
        if self.sender is not None and sender:
            keyed.append((f"sender:{sender}", self.sender))
            kinds.append("sender")
        if not keyed:
            return None
        refused = await self.windows.admit(keyed)
        if refused is None:
            return None
        index, wait = refused
        return Refusal(kinds[index], max(wait, 0.0))


def rest_sender(body: bytes) -> str | None:
    """The `sender` of a REST webhook body, or None (no sender, or a body the channel will refuse)."""
    from bot.json_body import JsonBodyError, read_json_object

    try:
        sender = read_json_object(body).get("sender")
    except JsonBodyError:
        return None
    return sender if isinstance(sender, str) else None


def too_many_requests(refusal: Refusal) -> HTTPResponse:
    """429 with a Chinese message, the consultation phone and Retry-After (whole seconds)."""
    from bot.knowledge.store import consultation_phone

    seconds = max(1, math.ceil(refusal.retry_after))
    text = TOO_MANY.format(seconds=seconds, phone=consultation_phone())
    return response.json({"error": text, "limit": refusal.kind}, status=429,
                         headers={"Retry-After": str(seconds), "X-Content-Type-Options": "nosniff",
                                  "Cache-Control": "no-store"},
                         dumps=lambda value: json.dumps(value, ensure_ascii=False))


def client_of(request: Request) -> str:
    """The client's address: X-Forwarded-For is read only from a trusted proxy (and ignored silently
    from anyone else: a warning per request would let a client flood the log)."""
    trusted = trusted_proxies()
    forwarded = request.headers.getall("x-forwarded-for", []) if is_trusted(request.ip, trusted) else []
    return client_address(request.ip, forwarded, trusted)


def install(app: Sanic, limiter: RateLimiter) -> None:
    """Check every POST to the REST webhook and the widget's session and feedback routes."""

    @app.middleware("request")
    async def kepu_rate_limit(request: Request) -> HTTPResponse | None:
        if request.method != "POST" or request.path not in ADDRESS_LIMITED:
            return None
        address = client_of(request)
        sender = rest_sender(request.body or b"") if request.path == REST_WEBHOOK else None
        refusal = await limiter.check(address, sender)
        return None if refusal is None else too_many_requests(refusal)

"""Lock stores whose queued messages are answered promptly (endpoints.yml `lock_store`).

Rasa answers one message of a conversation at a time: a second message of the
same sender waits for a ticket lock, and Rasa's LockStore polls it once a second
(`wait_time_in_seconds=1`, the default every caller in Rasa 3.6 uses). A WeChat
user who sends three quick lines then waits seconds for the third answer, past
WeChat's 5-second passive window. These subclasses only shorten that poll; the
locking itself is Rasa's.

    lock_store:
      type: bot.locks.PromptInMemoryLockStore      # one process (make run)
      poll_seconds: 0.02
    lock_store:
      type: bot.locks.PromptRedisLockStore         # several replicas
      url: 127.0.0.1
      port: 6379
      poll_seconds: 0.02
      lock_lifetime: 15    # seconds a ticket lives (Rasa: 60, TICKET_LOCK_LIFETIME)
      socket_timeout: 1    # Rasa's option: seconds before a Redis that does not answer is an error

`lock_lifetime` bounds how long a conversation waits after the replica holding its lock died
(nginx hands the message to another replica, which waits for the dead one's ticket to expire).
A Redis that does not answer is logged as such (once every 30 s at most); Rasa then fails the
message, and the channel answers "系统繁忙……" (bot/channels).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import redis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, InMemoryLockStore, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 0.02
WARN_EVERY_SECONDS = 30.0


def _poll(endpoint_config: EndpointConfig | None) -> float:
    raw = (endpoint_config.kwargs if endpoint_config else {}).get("poll_seconds", DEFAULT_POLL_SECONDS)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return DEFAULT_POLL_SECONDS
    return min(max(value, 0.001), 1.0)


def _lifetime(endpoint_config: EndpointConfig | None) -> float:
    raw = (endpoint_config.kwargs if endpoint_config else {}).get("lock_lifetime", LOCK_LIFETIME)
    try:
        return max(float(raw), 1.0)
    except (TypeError, ValueError):
        return float(LOCK_LIFETIME)


class _Prompt:
    """The ticket lock of Rasa's LockStore, polled every `poll_seconds` instead of every second,
    tickets living `lock_lifetime` seconds (when the caller asks for Rasa's default)."""

    poll_seconds: float = DEFAULT_POLL_SECONDS
    lock_lifetime: float = LOCK_LIFETIME

    @asynccontextmanager
    async def lock(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME,
                   wait_time_in_seconds: float | None = None) -> AsyncGenerator[TicketLock, None]:
        wait = self.poll_seconds if wait_time_in_seconds in (None, 1) else wait_time_in_seconds
        lifetime = self.lock_lifetime if lock_lifetime == LOCK_LIFETIME else lock_lifetime
        async with super().lock(conversation_id, lifetime, wait) as lock:  # type: ignore[misc]
            yield lock


class PromptInMemoryLockStore(_Prompt, InMemoryLockStore):
    """Rasa's in-memory lock store, polled promptly (one process)."""

    def __init__(self, endpoint_config: EndpointConfig | None = None, **_: Any) -> None:
        super().__init__()
        self.poll_seconds = _poll(endpoint_config)
        self.lock_lifetime = _lifetime(endpoint_config)


class PromptRedisLockStore(_Prompt, RedisLockStore):
    """Rasa's Redis lock store, polled promptly (several replicas share the locks)."""

    def __init__(self, endpoint_config: EndpointConfig | None = None, **_: Any) -> None:
        kwargs = dict(endpoint_config.kwargs) if endpoint_config else {}
        kwargs.pop("poll_seconds", None)
        kwargs.pop("lock_lifetime", None)
        self.address = f"{(endpoint_config.url if endpoint_config else None) or 'localhost'}:{kwargs.get('port', 6379)}"
        super().__init__(host=(endpoint_config.url if endpoint_config else None) or "localhost", **kwargs)
        self.poll_seconds = _poll(endpoint_config)
        self.lock_lifetime = _lifetime(endpoint_config)
        self._warned_at = -WARN_EVERY_SECONDS

    @asynccontextmanager
    async def lock(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME,
                   wait_time_in_seconds: float | None = None) -> AsyncGenerator[TicketLock, None]:
        """Rasa's ticket lock with four Redis round trips instead of seven for a message nobody else
        holds: the read that issues the ticket already tells whether it is served at once (Rasa
        reads the lock again), and the release reads it once, then saves it or, with no ticket
        left, deletes it (Rasa reads it twice)."""
        wait = self.poll_seconds if wait_time_in_seconds in (None, 1) else wait_time_in_seconds
        lifetime = self.lock_lifetime if lock_lifetime == LOCK_LIFETIME else lock_lifetime
        try:
            lock = self.get_or_create_lock(conversation_id)
            ticket = lock.issue_ticket(lifetime)
            self.save_lock(lock)
        except Exception as exc:  # as Rasa's issue_ticket
            raise LockError(f"Error while acquiring lock. Error:\n{exc}") from exc
        try:
            if lock.is_locked(ticket):
                lock = await self._acquire_lock(conversation_id, ticket, wait)  # Rasa's polling
            yield lock
        finally:
            self._release(conversation_id, ticket)

    def _release(self, conversation_id: str, ticket: int) -> None:
        lock = self.get_lock(conversation_id)
        if lock is None:
            return
        lock.remove_ticket_for(ticket)
        if lock.is_someone_waiting():
            self.save_lock(lock)
        else:
            self.delete_lock(conversation_id)

    # Rasa's three Redis operations, each logged clearly when Redis does not answer.
    def get_lock(self, conversation_id: str) -> TicketLock | None:
        """Rasa's get_lock; a Redis failure is logged, then raised as before."""
        with self._reporting():
            return super().get_lock(conversation_id)

    def save_lock(self, lock: TicketLock) -> None:
        """Rasa's save_lock; a Redis failure is logged, then raised as before."""
        with self._reporting():
            super().save_lock(lock)

    def delete_lock(self, conversation_id: str) -> None:
        """Rasa's delete_lock; a Redis failure is logged, then raised as before."""
        with self._reporting():
            super().delete_lock(conversation_id)

    @contextmanager
    def _reporting(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = now
                logger.error("lock store: Redis %s does not answer (%s: %s); messages are answered with "
                             "\"系统繁忙\" until it does", self.address, type(exc).__name__, exc)
            raise

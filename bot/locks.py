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
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, InMemoryLockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

DEFAULT_POLL_SECONDS = 0.02


def _poll(endpoint_config: EndpointConfig | None) -> float:
    raw = (endpoint_config.kwargs if endpoint_config else {}).get("poll_seconds", DEFAULT_POLL_SECONDS)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return DEFAULT_POLL_SECONDS
    return min(max(value, 0.001), 1.0)


class _Prompt:
    """The ticket lock of Rasa's LockStore, polled every `poll_seconds` instead of every second."""

    poll_seconds: float = DEFAULT_POLL_SECONDS

    @asynccontextmanager
    async def lock(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME,
                   wait_time_in_seconds: float | None = None) -> AsyncGenerator[TicketLock, None]:
        wait = self.poll_seconds if wait_time_in_seconds in (None, 1) else wait_time_in_seconds
        async with super().lock(conversation_id, lock_lifetime, wait) as lock:  # type: ignore[misc]
            yield lock


class PromptInMemoryLockStore(_Prompt, InMemoryLockStore):
    """Rasa's in-memory lock store, polled promptly (one process)."""

    def __init__(self, endpoint_config: EndpointConfig | None = None, **_: Any) -> None:
        super().__init__()
        self.poll_seconds = _poll(endpoint_config)


class PromptRedisLockStore(_Prompt, RedisLockStore):
    """Rasa's Redis lock store, polled promptly (several replicas share the locks)."""

    def __init__(self, endpoint_config: EndpointConfig | None = None, **_: Any) -> None:
        kwargs = dict(endpoint_config.kwargs) if endpoint_config else {}
        kwargs.pop("poll_seconds", None)
        super().__init__(host=(endpoint_config.url if endpoint_config else None) or "localhost", **kwargs)
        self.poll_seconds = _poll(endpoint_config)

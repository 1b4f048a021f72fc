"""The prompt lock stores: Rasa's ticket lock, a queued message waits about the poll, not a second."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time

import pytest
from rasa.core.lock_store import LockStore
from rasa.utils.endpoints import EndpointConfig

from bot.locks import PromptInMemoryLockStore, PromptRedisLockStore


def _store(**kwargs) -> LockStore:
    return LockStore.create(EndpointConfig(type="bot.locks.PromptInMemoryLockStore", **kwargs))


def test_endpoints_config_builds_the_prompt_store():
    store = _store(poll_seconds=0.05)
    assert isinstance(store, PromptInMemoryLockStore) and store.poll_seconds == 0.05
    assert _store(poll_seconds="nonsense").poll_seconds == 0.02


def test_a_queued_message_waits_for_the_first_not_for_a_second():
    store = _store(poll_seconds=0.02)
    done: list[float] = []

    async def handle(hold: float) -> None:
        async with store.lock("sender-1"):
            await asyncio.sleep(hold)
            done.append(time.perf_counter())

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(handle(0.1), handle(0.01), handle(0.01))
        return start

    start = asyncio.run(main())
    assert len(done) == 3
    gaps = [b - a for a, b in zip([start, *done], done, strict=False)][1:]
    assert all(gap < 0.1 for gap in gaps), gaps  # Rasa's own store waits about 1 s per queued message


@pytest.fixture()
def redis_port(tmp_path):
    """A redis-server of this test's own, on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_replicas_share_the_redis_lock_and_queue_promptly(redis_port):
    config = EndpointConfig(type="bot.locks.PromptRedisLockStore", url="127.0.0.1", port=redis_port, db=0,
                            poll_seconds=0.02)
    first, second = LockStore.create(config), LockStore.create(config)  # two replicas
    assert isinstance(first, PromptRedisLockStore)
    done: list[float] = []

    async def handle(store, hold: float) -> None:
        async with store.lock("sender-2"):
            await asyncio.sleep(hold)
            done.append(time.perf_counter())

    async def main() -> None:
        await asyncio.gather(handle(first, 0.1), handle(second, 0.01))

    asyncio.run(main())
    assert len(done) == 2 and 0 < done[1] - done[0] < 0.1, done


def test_the_projects_endpoints_use_the_prompt_store():
    from pathlib import Path

    from rasa.utils.endpoints import read_endpoint_config

    root = Path(__file__).resolve().parents[2]
    config = read_endpoint_config(str(root / "endpoints.yml"), "lock_store")
    assert isinstance(LockStore.create(config), PromptInMemoryLockStore)
    replicas = (root / "endpoints.replicas.yml").read_text(encoding="utf-8")
    assert "type: bot.locks.PromptRedisLockStore" in replicas


def test_tickets_live_the_configured_lifetime(redis_port):
    """A replica that dies holding a lock leaves its ticket: the next message waits for
    `lock_lifetime`, not Rasa's 60 s."""
    config = EndpointConfig(type="bot.locks.PromptRedisLockStore", url="127.0.0.1", port=redis_port, db=0,
                            lock_lifetime=15)
    store = LockStore.create(config)
    expires: list[float] = []

    async def handle() -> None:
        async with store.lock("sender-3"):  # as Rasa's agent takes it; a dead replica never cleans up
            expires.append(store.get_lock("sender-3").tickets[0].expires)

    before = time.time()
    asyncio.run(handle())
    assert before + 15 <= expires[0] <= time.time() + 15
    assert _store(lock_lifetime="nonsense").lock_lifetime == 60


def test_a_redis_that_does_not_answer_is_logged_and_the_message_fails(caplog):
    from rasa.core.lock_store import LockError

    from tests.ports import free_port

    port = free_port()  # nothing listens there
    store = LockStore.create(EndpointConfig(type="bot.locks.PromptRedisLockStore", url="127.0.0.1", port=port,
                                            db=0, socket_timeout=1))

    async def handle() -> None:
        async with store.lock("sender-4"):
            raise AssertionError("the lock cannot be taken without Redis")

    with caplog.at_level("ERROR", logger="bot.locks"), pytest.raises(LockError):
        asyncio.run(handle())
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.locks"]
    assert len(lines) == 1 and lines[0].startswith(f"lock store: Redis 127.0.0.1:{port} does not answer")


def test_a_message_nobody_else_holds_costs_four_redis_operations(redis_port):
    import redis

    store = LockStore.create(EndpointConfig(type="bot.locks.PromptRedisLockStore", url="127.0.0.1",
                                            port=redis_port, db=0))
    client = redis.Redis(port=redis_port)
    before = client.info("commandstats")

    async def handle() -> None:
        async with store.lock("sender-5"):
            assert client.exists(store.key_prefix + "sender-5")

    asyncio.run(handle())
    after = client.info("commandstats")
    used = {name: after[name]["calls"] - before.get(name, {"calls": 0})["calls"]
            for name in ("cmdstat_get", "cmdstat_set", "cmdstat_del")}
    assert used == {"cmdstat_get": 2, "cmdstat_set": 1, "cmdstat_del": 1}  # Rasa's own: 4 GET, 2 SET, 1 DEL
    assert not client.exists(store.key_prefix + "sender-5")

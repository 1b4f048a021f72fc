"""The cluster of `make run-cluster` (scripts/cluster.sh) on free ports, for the tests and benchmarks
that start one: the cluster e2e test, `make test-faults` and `make loadtest`.

- `Cluster`: the addresses, pids and nginx log of a started cluster;
- `cluster_sh`, `free_ports`, `cluster_env`: the pieces to start one on given stores;
- `own_cluster()`: a cluster on a PostgreSQL cluster and a redis-server of its own (stopped and
  deleted afterwards), so nothing touches the machine's shared servers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.ports import free_port
from tests.servers import PostgresServer, RedisServer

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "scripts" / "cluster.sh"
WECHAT_TOKEN = "e2e-cluster-token"
# scripts/cluster.sh's log_format; $upstream_addr lists every replica tried ("A, B": A failed, B answered)
ACCESS_LINE = re.compile(r'"([^"]*)" \d+ \S+ upstream=(.+)$')


@dataclass
class Cluster:
    port: int
    replica_ports: tuple[int, int]
    db_url: str
    redis: Any  # tests.servers.RedisServer
    redis_url: str
    prefix: str
    env: dict[str, str]
    started_in: float = 0.0
    seen_log_lines: int = field(default=0)
    postgres: PostgresServer | None = None  # when the cluster has a PostgreSQL of its own
    actions_ports: tuple[int, int] = (0, 0)

    @property
    def front(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def a(self) -> str:
        return f"http://127.0.0.1:{self.replica_ports[0]}"

    @property
    def b(self) -> str:
        return f"http://127.0.0.1:{self.replica_ports[1]}"

    @property
    def folder(self) -> Path:
        return ROOT / "build" / f"cluster-{self.port}"

    def pid(self, port: int, name: str = "rasa") -> int:
        """The pid scripts/serve.sh wrote for the replica on `port` (`rasa` or `actions`)."""
        return int((ROOT / "build" / f"run-{port}" / f"{name}.pid").read_text().strip())

    def log(self, port: int, name: str = "rasa") -> Path:
        """The log of the replica on `port` (`rasa` or `actions`)."""
        return ROOT / "build" / f"run-{port}" / f"{name}.log"

    def logged(self, request_prefix: str, count: int = 0, timeout: float = 5.0) -> list[str]:
        """The replicas that answered the requests starting with `request_prefix`, of those nginx logged
        since the last call; waits until there are `count` (nginx logs a request after answering it)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = (self.folder / "nginx-access.log").read_text(encoding="utf-8").splitlines()
            found = [m.group(2).split(", ")[-1] for m in map(ACCESS_LINE.search, lines[self.seen_log_lines:])
                     if m and m.group(1).startswith(request_prefix)]
            if len(found) >= count or time.monotonic() > deadline:
                self.seen_log_lines = len(lines)
                return found
            time.sleep(0.05)


def cluster_sh(command: str, env: dict[str, str], timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLUSTER), command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    for _ in range(count):
        ports.append(free_port(avoid=set(ports)))
    return ports


def cluster_env(ports: list[int], db_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    """scripts/cluster.sh's settings for nginx on ports[0], replicas on ports[1:3], their action
    servers on ports[3:5]; none of the caller's own cluster, WeChat or store settings leak in."""
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith(("KEPU_CLUSTER_", "WECHAT_", "REDIS_", "KEPU_RATE_LIMIT_"))
                 and k not in ("KEPU_DB_URL", "TRACKER_URL", "KEPU_LIVE_URLS", "KEPU_TRUSTED_PROXIES")}
    return {**inherited, "KEPU_CLUSTER_PORT": str(ports[0]), "KEPU_CLUSTER_HOST": "127.0.0.1",
            "KEPU_CLUSTER_REPLICA_PORTS": f"{ports[1]} {ports[2]}",
            "KEPU_CLUSTER_ACTIONS_PORTS": f"{ports[3]} {ports[4]}",
            "KEPU_CLUSTER_DB_URL": db_url, "KEPU_CLUSTER_REDIS_URL": redis_url, "KEPU_CLUSTER_PREFIX": prefix,
            "WECHAT_TOKEN": WECHAT_TOKEN}


class ClusterStartError(RuntimeError):
    """scripts/cluster.sh start failed; the message has its output."""


@contextmanager
def own_cluster(extra_env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """A started cluster on a PostgreSQL and a redis-server of its own; everything is stopped and
    deleted afterwards. ClusterStartError when it does not start."""
    postgres = PostgresServer().start()
    redis_folder = Path(tempfile.mkdtemp(prefix="kepu-cluster-redis-"))
    redis = None
    ports = free_ports(5)
    run = uuid.uuid4().hex[:10]
    env: dict[str, str] = {}
    try:
        redis = RedisServer(redis_folder).start()
        db_url, redis_url = postgres.url(f"kepu_{run}"), f"redis://127.0.0.1:{redis.port}/3"
        env = {**cluster_env(ports, db_url, redis_url, f"kepu{run}"), **(extra_env or {})}
        made = Cluster(ports[0], (ports[1], ports[2]), db_url, redis, redis_url, f"kepu{run}", env,
                       postgres=postgres, actions_ports=(ports[3], ports[4]))
        start = time.monotonic()
        started = cluster_sh("start", env)
        made.started_in = time.monotonic() - start
        if started.returncode != 0:
            raise ClusterStartError(f"scripts/cluster.sh start failed:\n{started.stdout}\n{started.stderr}")
        yield made
    finally:
        if env:
            cluster_sh("stop", env, timeout=120)
        if redis is not None:
            redis.stop()
        postgres.remove()
        shutil.rmtree(redis_folder, ignore_errors=True)
        shutil.rmtree(ROOT / "build" / f"cluster-{ports[0]}", ignore_errors=True)
        for port in ports[1:3]:
            shutil.rmtree(ROOT / "build" / f"run-{port}", ignore_errors=True)

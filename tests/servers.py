"""Real Sanic servers for the tests, each on a free port of 127.0.0.1 that the test itself started.

- `SanicServer`: an app served inside the test's own event loop (async tests);
- `ThreadedServer`: the same in a background thread with its own loop (`BackgroundLoop`), for
  synchronous tests (hypothesis drives plain functions);
- `RedisServer`: a `redis-server` process of the test's own on a free port, without persistence;
- `PostgresServer`: a PostgreSQL cluster of the test's own (initdb, pg_ctl) on a free port, which a
  test may stop and restart;
- `project_app()`: the bot's whole HTTP surface as `rasa run --cors "*"` mounts it -- the REST and
  WeChat channels (Rasa's `register`), Rasa's CORS set-up, and bot.server.add_project_routes
  (request guards, /status, widget, admin) -- with a stand-in agent instead of a trained model, and
  WeChat's API played by the fake WeChat API server the caller started (a real aiohttp server on a
  free port, tests/channels/conftest.py).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import InputChannel, register
from sanic import Sanic

from tests.ports import free_port

_names = itertools.count()


def new_app(prefix: str) -> Sanic:
    """A fresh Sanic app; several in one process need Sanic's test mode (what sanic-testing does)."""
    Sanic.test_mode = True
    return Sanic(f"{prefix}_{next(_names)}", configure_logging=False)


def project_app(agent: Any, channels: list[InputChannel], admin_site: Any = None) -> Sanic:
    """The project's app: channels under /webhooks/, CORS as `--cors "*"`, then the project's routes."""
    from rasa.server import configure_cors  # imports all of Rasa's server: only here

    from bot.server import add_project_routes

    app = new_app("project_test")
    configure_cors(app, "*")  # what `rasa run --cors "*"` does (scripts/serve.sh)
    app.ctx.agent = agent
    register(channels, app, "/webhooks/")
    add_project_routes(app, admin_site=admin_site)
    return app


class SanicServer:
    """`app` served on a free port of 127.0.0.1 in the running event loop."""

    def __init__(self, app: Sanic, host: str = "127.0.0.1", access_log: bool = False) -> None:
        self.app = app
        self.host = host
        self.access_log = access_log
        self.port = 0
        self._server: Any = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> SanicServer:
        sock = socket.socket()
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        self._server = await self.app.create_server(sock=sock, return_asyncio_server=True,
                                                    access_log=self.access_log)
        await self._server.startup()
        await self._server.before_start()
        await self._server.after_start()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.before_stop()
            await self._server.close()
            await self._server.after_stop()
            self._server = None


class BackgroundLoop:
    """An event loop running in a thread of its own; `run(coro)` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class ThreadedServer:
    """A SanicServer on a BackgroundLoop (its own, or one given that other servers share);
    `run(coro)` runs a coroutine there."""

    def __init__(self, app: Sanic, background: BackgroundLoop | None = None) -> None:
        self._owns_loop = background is None
        self.background = background or BackgroundLoop()
        self.server = SanicServer(app)

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return self.background.run(coro, timeout)

    def start(self) -> ThreadedServer:
        self.run(self.server.start())
        return self

    @property
    def base(self) -> str:
        return self.server.base

    def stop(self) -> None:
        """Stop the server, and the loop when it is the server's own."""
        try:
            self.run(self.server.stop())
        finally:
            if self._owns_loop:
                self.background.close()


REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """`redis-server` on a free port of 127.0.0.1 with its working directory in `folder`: no RDB
    snapshots, no append-only file, so nothing outlives the test session."""

    def __init__(self, folder: Path, binary: str = REDIS_SERVER) -> None:
        self.folder = folder
        self.binary = binary
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> RedisServer:
        """Start the server and wait until it answers PING; RuntimeError when it does not."""
        if not Path(self.binary).exists():
            raise RuntimeError(f"{self.binary} is missing: run 'make test-deps' (apt-get install redis-server)")
        self.port = free_port()
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(self.folder)]
        with open(self.folder / "redis.log", "wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(command, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.answers_ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start:\n"
                                   + (self.folder / "redis.log").read_text(errors="replace")[-2000:])
            time.sleep(0.05)
        return self

    def answers_ping(self) -> bool:
        """Whether the server answers PING with PONG (RESP inline command, no client library)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server this object started (SIGTERM, then SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class Project:
    """The project's app with its stand-ins: the agent, the WeChat channel and the admin accounts."""

    app: Sanic
    rasa: Any  # tests.channels.conftest.FakeRasa
    wechat: Any  # bot.channels.wechat.channel.WeChatInput
    auth: Any  # bot.web.admin_auth.AdminAuth on the test's database
    api: Any  # tests.channels.conftest.FakeWeChatApi, WeChat's API for the channel


def build_project(kb: Any, db_url: str, api: Any, **wechat_settings: Any) -> Project:
    """The project's app on the database `db_url`, WeChat configured with the test credentials and
    `api` (a started tests.channels.conftest.FakeWeChatApi) as WeChat's API server."""
    from bot.channels.rest import SafeRestInput
    from bot.channels.wechat.channel import WeChatInput
    from bot.channels.wechat.settings import WeChatSettings
    from bot.dialogue import hot_buttons
    from bot.knowledge.store import make_engine
    from bot.web.admin import AdminSite
    from bot.web.admin_auth import AdminAuth
    from tests.channels.conftest import AES_KEY, APP_ID, APP_SECRET, TOKEN, FakeRasa

    settings = WeChatSettings(token=TOKEN, app_id=APP_ID, app_secret=APP_SECRET, aes_key=AES_KEY,
                              api_base=api.url, passive_timeout=1.0, **wechat_settings)
    wechat = WeChatInput(settings, hot_questions=lambda: hot_buttons(kb))
    rasa = FakeRasa()
    auth = AdminAuth(make_engine(db_url))
    app = project_app(rasa, [SafeRestInput(), wechat], admin_site=AdminSite(auth))
    return Project(app, rasa, wechat, auth, api)


PG_BIN = Path("/usr/lib/postgresql")


def _pg_tool(name: str) -> str:
    """`initdb`, `pg_ctl`, ... of the newest PostgreSQL installed from Debian's packages."""
    versions = sorted(PG_BIN.glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not versions:
        raise RuntimeError("PostgreSQL's server programs are missing (apt-get install postgresql)")
    return str(versions[-1] / name)


class PostgresServer:
    """A PostgreSQL cluster of the test's own (initdb) on a free port of 127.0.0.1, trust
    authentication for `postgres`; `restart()` stops it (fast shutdown) and starts it again on the
    same port and data. Running as root, the server runs as the `postgres` user (PostgreSQL refuses
    root), in a folder of /tmp that user can enter."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="kepu-test-pg-"))
        self.data = self.folder / "data"
        self.port = 0
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str, timeout: float = 120) -> None:
        result = subprocess.run([*self._as, *command], capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            log = self.folder / "postgres.log"
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}"
                               + (log.read_text(errors="replace")[-2000:] if log.exists() else ""))

    def start(self) -> PostgresServer:
        """initdb on first start, then pg_ctl start (waits until it accepts connections)."""
        if not self.data.exists():
            self._run(_pg_tool("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--locale=C.UTF-8")
            self.port = free_port()
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
        self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "postgres.log"),
                  "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        """Fast shutdown: open transactions are rolled back, committed data stays."""
        if (self.data / "postmaster.pid").exists():
            self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server and delete its data."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

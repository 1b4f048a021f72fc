"""`python -m bot.server run ...`: Rasa's own `rasa run`, plus the project's routes.

Rasa has no hook for extra routes outside /webhooks/, so this entry point
wraps `rasa.core.run.configure_app` and adds, on Rasa's port:
- GET /status without a token: readiness (200 once the model is loaded,
  503 before) -- with a token, Rasa's own protected /status answers;
- the portal demo page, widget assets and admin page (bot/web), when present;
- on every route, Rasa's included: 400 for a malformed Content-Length and
  signature query strings kept out of the logs (bot/http_guards.py);
- rate limits per sender and per client address on the REST webhook and the
  widget's POST routes: 429 with a Chinese message (bot/ratelimit.py).
Everything else is Rasa's, unchanged (REST channel, HTTP API with token auth).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

# isort: off
import bot.nojax  # noqa: F401  (before anything imports TensorFlow)
import rasa.core.run
# isort: on
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.http_guards import guard_app
from bot.ratelimit import RateLimiter
from bot.ratelimit import install as install_rate_limits

_original_configure_app = rasa.core.run.configure_app


def _agent_ready(app: Sanic) -> bool:
    agent = getattr(app.ctx, "agent", None)
    return bool(agent is not None and agent.is_ready())


def add_project_routes(app: Sanic, admin_site: Any = None, rate_limiter: RateLimiter | None = None) -> None:
    """Attach the request guards, the rate limits, the public readiness check and the web front
    (if installed).

    `admin_site` is the admin page's state (bot.web.admin.AdminSite); tests hand in one on their
    own database. `rate_limiter` (bot/ratelimit.py): None reads the KEPU_RATE_LIMIT_* settings.
    """
    guard_app(app)
    install_rate_limits(app, rate_limiter or RateLimiter.from_env())
    app.register_listener(_read_knowledge_early, "after_server_start")

    @app.middleware("request")
    async def public_status(request: Request) -> HTTPResponse | None:
        if request.path != "/status" or request.method != "GET":
            return None
        if request.args.get("token") or request.headers.get("Authorization"):
            return None  # Rasa's authenticated /status with model details
        if _agent_ready(request.app):
            return response.json({"status": "ready"})
        return response.json({"status": "loading"}, status=503)

    try:
        from bot.web import register as register_web
    except ImportError:
        return
    register_web(app, admin_site=admin_site)


async def _read_knowledge_early(app: Sanic, _loop: Any) -> None:
    """Read the knowledge base once at start, so the consultation phone of the "系统繁忙" reply is
    known even when the database is down the first time a message fails."""
    import asyncio

    from bot.knowledge.store import consultation_phone

    await asyncio.to_thread(consultation_phone)


def configure_app_with(admin_site: Any = None) -> Callable[..., Sanic]:
    """Rasa's configure_app, then the project's routes with `admin_site` (None: the default one)."""

    def configure_app(*args: Any, **kwargs: Any) -> Sanic:
        app = _original_configure_app(*args, **kwargs)
        add_project_routes(app, admin_site=admin_site)
        return app

    return configure_app


configure_app = configure_app_with()


def _fast_action_result_validation() -> None:
    """Validate action server responses against Rasa's schema, each event against its own type.

    Rasa's RemoteAction calls jsonschema.validate() per action call, which re-checks the (constant)
    schema every time and tries every event against all 23 event types of its `oneOf`: measured
    with py-spy at about half of the server's time per message. The events' `oneOf` alternatives
    differ in their `event` constant, so an event is valid exactly when it matches the item schema
    without the `oneOf` and the one alternative of its own type: the same result, with validators
    built once. Anything that does not pass goes through Rasa's own validation and error message.
    """
    from rasa.core.actions.action import RemoteAction

    valid = action_result_checker()
    original = RemoteAction._validate_action_result

    def validate(self: RemoteAction, result: dict[str, Any]) -> bool:
        return True if valid(result) else original(self, result)  # Rasa's own error message

    RemoteAction._validate_action_result = validate  # type: ignore[method-assign]


def action_result_checker() -> Callable[[Any], bool]:
    """Whether an action server response is valid under Rasa's schema (see above), fast."""
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    compiled = validator_for(schema)
    items = schema["properties"]["events"]["items"]
    outer = compiled({**schema, "properties": {**schema["properties"], "events": {"type": "array"}}})
    base = compiled({key: value for key, value in items.items() if key != "oneOf"})
    by_type = {alternative["properties"]["event"]["const"]: compiled(alternative) for alternative in items["oneOf"]}

    def valid(result: Any) -> bool:
        events = result.get("events", []) if isinstance(result, dict) else None
        if not outer.is_valid(result) or not isinstance(events, list):
            return False
        for event in events:
            own = by_type.get(event.get("event")) if isinstance(event, dict) else None
            if own is None or not base.is_valid(event) or not own.is_valid(event):
                return False
        return True

    return valid


def _sqlite_write_ahead_log() -> None:
    """WAL journal and normal sync for SQLite tracker stores.

    Each message reads and writes the conversation; with SQLite's default
    rollback journal every write waits for two fsyncs. WAL keeps commits
    durable against a process crash with far fewer syncs.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()


def main(admin_site: Any = None) -> None:
    """Run Rasa's CLI with the project's routes added; `admin_site` is the admin page's state
    (bot.web.admin.AdminSite; None: the default one, with the real retrain and rollback)."""
    rasa.core.run.configure_app = configure_app_with(admin_site)
    _fast_action_result_validation()
    _sqlite_write_ahead_log()
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *sys.argv[1:], *_token_arguments(sys.argv[1:], os.environ)]
    rasa_main()


def _token_arguments(argv: list[str], environ: Any) -> list[str]:
    """`--auth-token <KEPU_API_TOKEN>` for Rasa's parser, taken out of the environment.

    Rasa reads its API token only from the command line, which `ps` shows every user of the
    machine. scripts/serve.sh passes it in KEPU_API_TOKEN instead; it is added to this process's
    own argument list (not the one the kernel shows) and removed from the environment, so the
    action server and training subprocesses do not inherit it. An explicit --auth-token wins.
    """
    token = environ.pop("KEPU_API_TOKEN", "")
    if not token or any(a == "--auth-token" or a.startswith("--auth-token=") for a in argv):
        return []
    return ["--auth-token", token]


if __name__ == "__main__":
    main()

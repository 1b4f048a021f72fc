"""`python -m bot.server run ...`: Rasa's own `rasa run`, plus the project's routes.

Rasa has no hook for extra routes outside /webhooks/, so this entry point
wraps `rasa.core.run.configure_app` and adds, on Rasa's port:
- GET /status without a token: readiness (200 once the model is loaded,
  503 before) -- with a token, Rasa's own protected /status answers;
- the portal demo page, widget assets and admin page (bot/web), when present.
Everything else is Rasa's, unchanged (REST channel, HTTP API with token auth).
"""

from __future__ import annotations

import sys
from typing import Any

import rasa.core.run
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

_original_configure_app = rasa.core.run.configure_app


def _agent_ready(app: Sanic) -> bool:
    agent = getattr(app.ctx, "agent", None)
    return bool(agent is not None and agent.is_ready())


def add_project_routes(app: Sanic) -> None:
    """Attach the public readiness check and the web front (if installed)."""

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
    register_web(app)


def configure_app(*args: Any, **kwargs: Any) -> Sanic:
    """Rasa's configure_app, then the project's routes."""
    app = _original_configure_app(*args, **kwargs)
    add_project_routes(app)
    return app


def main() -> None:
    """Run Rasa's CLI with the project's routes added."""
    rasa.core.run.configure_app = configure_app
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *sys.argv[1:]]
    rasa_main()


if __name__ == "__main__":
    main()

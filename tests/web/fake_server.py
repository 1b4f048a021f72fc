"""`python -m tests.web.fake_server [--step-seconds S] run ...`: the real `python -m bot.server run`,
with the admin page's retrain and rollback replaced by the scripted ones of tests/web/fake_retrain.py.

For browser tests, whose server is another process and cannot be handed Python objects. Everything
else (Rasa, the project's routes, the admin page and its accounts) is the production code unchanged.
"""

from __future__ import annotations

import sys

from bot import server
from bot.web.admin import AdminSite
from tests.web.fake_retrain import ScriptedRetrain, scripted_rollback

DEFAULT_STEP_SECONDS = 0.6  # slow enough for a browser to see the bar move, fast enough for a test


def main(argv: list[str]) -> None:
    """Strip `--step-seconds S` from `argv`, then run bot.server's CLI with the scripted admin site."""
    step_seconds = DEFAULT_STEP_SECONDS
    if argv[:1] == ["--step-seconds"]:
        step_seconds, argv = float(argv[1]), argv[2:]
    sys.argv = [sys.argv[0], *argv]
    server.main(admin_site=AdminSite(retrain=ScriptedRetrain("deploy", step_seconds), rollback=scripted_rollback))


if __name__ == "__main__":
    main(sys.argv[1:])

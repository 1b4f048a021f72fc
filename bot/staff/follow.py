"""`python -m bot.staff.follow`: keep one Rasa server on the model named in build/current_model.

`bot retrain` and `bot rollback` hot-swap every server listed in KEPU_LIVE_URLS. In Kubernetes the
replicas of a Deployment have no fixed addresses to list, so each pod runs this loop beside its
Rasa server instead (deploy/k8s/deployment.yaml, container `model-follow`): build/ and models/ are
on a volume shared by the pods; whenever the model the server has loaded differs from the one
build/current_model names, the loop asks its own server to load it (PUT /model, as `bot retrain`
does). The server keeps answering with the old model until the new one is loaded.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from bot.knowledge.store import ROOT
from bot.staff import live

logger = logging.getLogger("bot.staff.follow")

# What one look did: (outcome, model file).
LOADED, SAME, NOT_READY, NO_MODEL = "loaded", "same", "not ready", "no model"


def wanted_model(root: Path = ROOT) -> Path | None:
    """The model file build/current_model names (absolute), or None when there is none on disk.

    Read as bot.staff.retrain writes it (a path relative to the project, or absolute); the
    retrain module itself is not imported, to keep this sidecar small.
    """
    current = root / "build" / "current_model"
    name = current.read_text(encoding="utf-8").strip() if current.is_file() else ""
    if not name:
        return None
    path = Path(name) if Path(name).is_absolute() else root / name
    return path if path.is_file() else None


def follow_once(url: str, token: str | None = None, root: Path = ROOT) -> tuple[str, str]:
    """Look once: load the wanted model on `url` when it serves another one."""
    wanted = wanted_model(root)
    if wanted is None:
        return NO_MODEL, ""
    if not live.is_ready(url):
        return NOT_READY, str(wanted)
    if Path(live.model_name(url, token)).name == wanted.name:
        return SAME, str(wanted)
    live.load_model(url, str(wanted), token)
    return LOADED, str(wanted)


def follow(url: str, interval: float, rounds: int = 0, root: Path = ROOT) -> None:
    """Look every `interval` seconds (`rounds` times; 0: for ever). A failed load is logged and
    tried again at the next look."""
    done = 0
    while rounds <= 0 or done < rounds:
        try:
            outcome, model = follow_once(url, root=root)
        except live.LiveError as exc:
            logger.warning("model-follow: %s", exc)
        else:
            if outcome == LOADED:
                logger.info("model-follow: %s now serves %s", url, model)
        done += 1
        if rounds <= 0 or done < rounds:
            time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="让本机 Rasa 服务器跟随 build/current_model / "
                                                 "keep a Rasa server on build/current_model")
    parser.add_argument("--url", default=live.DEFAULT_LIVE_URL, help="the Rasa server (default %(default)s)")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between looks")
    parser.add_argument("--rounds", type=int, default=0, help="looks before exiting (0: for ever)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    follow(args.url.rstrip("/"), max(args.interval, 1.0), args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

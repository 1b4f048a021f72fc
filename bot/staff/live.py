"""Talking to running Rasa servers: which ones are live, the API token, parsing
a question, asking one over REST, loading a model (PUT /model).

Plain urllib (blocking, no event loop needed): these are a handful of staff
requests, not traffic.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from bot.knowledge.store import ROOT

DEFAULT_LIVE_URL = "http://127.0.0.1:5005"


class LiveError(RuntimeError):
    """A live server did not answer as expected."""


def live_urls() -> list[str]:
    """The live servers to hot-swap: KEPU_LIVE_URLS (comma or space separated) or 127.0.0.1:5005."""
    raw = os.environ.get("KEPU_LIVE_URLS") or DEFAULT_LIVE_URL
    return [u.strip().rstrip("/") for u in raw.replace(",", " ").split() if u.strip()]


def api_token() -> str:
    """Rasa's HTTP API token: RASA_API_TOKEN or build/api_token ('' when neither exists)."""
    token = os.environ.get("RASA_API_TOKEN")
    if token:
        return token
    path = ROOT / "build" / "api_token"
    return path.read_text(encoding="utf-8").strip() if path.exists() else ""


def _request(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    except (urllib.error.URLError, OSError) as exc:
        raise LiveError(f"{url}: {exc}") from exc
    try:
        return status, json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return status, raw.decode("utf-8", "replace")


def _with_token(url: str, token: str | None) -> str:
    token = api_token() if token is None else token
    return f"{url}?{urllib.parse.urlencode({'token': token})}" if token else url


def is_ready(url: str, timeout: float = 2.0) -> bool:
    """True when GET <url>/status answers 200 (the server has a model loaded)."""
    try:
        status, _ = _request("GET", f"{url}/status", timeout=timeout)
    except LiveError:
        return False
    return status == 200


def parse(url: str, text: str, token: str | None = None) -> dict[str, Any]:
    """POST /model/parse: the live model's reading of `text` (intent, ranking, response_selector)."""
    status, body = _request("POST", _with_token(f"{url}/model/parse", token), {"text": text})
    if status != 200 or not isinstance(body, dict):
        raise LiveError(f"{url}/model/parse 返回 HTTP {status}")
    return body


def ask(url: str, sender: str, text: str, timeout: float = 60.0) -> tuple[int, str]:
    """Send one REST message; return (HTTP status, the bot's texts joined by newlines)."""
    status, body = _request("POST", f"{url}/webhooks/rest/webhook", {"sender": sender, "message": text},
                            timeout=timeout)
    if status != 200 or not isinstance(body, list):
        return status, ""
    return status, "\n".join(str(m.get("text") or "") for m in body if isinstance(m, dict)).strip()


def load_model(url: str, model_file: str, token: str | None = None, timeout: float = 300.0) -> None:
    """PUT /model: the server loads `model_file` (an absolute path) and swaps to it.

    Rasa keeps answering with the old agent until the new one is loaded.
    """
    status, body = _request("PUT", _with_token(f"{url}/model", token), {"model_file": model_file}, timeout=timeout)
    if status not in (200, 204):
        message = body.get("message") if isinstance(body, dict) else body
        raise LiveError(f"{url} 加载模型失败（HTTP {status}）：{message}")


def model_name(url: str, token: str | None = None) -> str:
    """The model file the server has loaded ('' when it does not say)."""
    try:
        status, body = _request("GET", _with_token(f"{url}/status", token), timeout=5.0)
    except LiveError:
        return ""
    if status != 200 or not isinstance(body, dict):
        return ""
    return str(body.get("model_file") or "")

"""The WeChat channel's settings: non-secret options from credentials.yml, secrets and the
shared-store switches from WECHAT_* environment variables (docs/wechat.md, sections 2, 5 and 7)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com"
ENV = {"token": "WECHAT_TOKEN", "app_id": "WECHAT_APP_ID", "app_secret": "WECHAT_APP_SECRET",
       "aes_key": "WECHAT_AES_KEY"}
STORES = ("memory", "redis")  # for the nonce store and the per-user state alike
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_REDIS_PREFIX = "kepu:wechat:nonce:"
DEFAULT_STATE_PREFIX = "kepu:wechat:state:"


@dataclass(frozen=True)
class WeChatSettings:
    """Everything the channel needs; secrets are read from the environment."""

    token: str = ""
    app_id: str = ""
    app_secret: str = ""
    aes_key: str = ""
    api_base: str = DEFAULT_API_BASE
    passive_timeout: float = 4.0  # WeChat gives up after 5 s
    followup_delay: float = 0.5  # before sending the rest of a split passive answer
    dedupe_ttl: float = 300.0  # WeChat retries within about 15 s
    buttons_ttl: float = 1800.0  # how long "回复 1" keeps its meaning
    pending_ttl: float = 3600.0  # how long an undelivered answer waits for the user's next message
    http_timeout: float = 10.0
    token_margin: float = 300.0  # refresh the access token this long before it expires
    timestamp_window: float = 300.0  # a signed timestamp further than this from now is refused
    encrypted_only: bool = False  # refuse plaintext messages (recommended once safe mode works)
    nonce_store: str = "memory"  # or "redis", shared by several replicas
    redis_url: str = DEFAULT_REDIS_URL  # the nonce store's and the state's Redis
    redis_prefix: str = DEFAULT_REDIS_PREFIX
    state: str = "memory"  # per-user state (dedupe, buttons, pending answers, access token): or "redis"
    state_prefix: str = DEFAULT_STATE_PREFIX
    menu: dict[str, str] = field(default_factory=dict)  # menu CLICK key -> question

    @property
    def configured(self) -> bool:
        """Whether WeChat requests can be verified at all."""
        return bool(self.token)


def _positive(value: Any, default: float, name: str) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number <= 0:
        logger.warning("wechat: ignoring invalid %s=%r, using %s", name, value, default)
        return default
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def _store(value: Any, name: str) -> str:
    store = str(value or "memory").strip().lower()
    if store not in STORES:
        logger.warning("wechat: unknown %s=%r, using memory", name, store)
        return "memory"
    return store


def _menu(value: Any) -> dict[str, str]:
    """Menu CLICK keys -> questions from credentials.yml; invalid entries are logged and left out."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        logger.warning("wechat: 'menu' in credentials.yml must map menu keys to questions; ignored")
        return {}
    menu: dict[str, str] = {}
    for key, question in value.items():
        name = str(key).strip()
        if name and len(name.encode("utf-8")) <= 128 and isinstance(question, str) and question.strip():
            menu[name] = question.strip()
        else:
            logger.warning("wechat: ignoring menu entry %r (a key of at most 128 bytes and a question)", key)
    return menu


def _shared_settings(creds: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Timestamp window, encrypted-only and the shared stores: a WECHAT_* variable wins over
    credentials.yml, so one replica's environment can switch to Redis without editing the shared file."""
    def option(key: str, variable: str) -> Any:
        value = env.get(variable)
        return value if value not in (None, "") else creds.get(key)

    return {
        "timestamp_window": _positive(option("timestamp_window", "WECHAT_TIMESTAMP_WINDOW"),
                                      WeChatSettings.timestamp_window, "timestamp_window"),
        "encrypted_only": _flag(option("encrypted_only", "WECHAT_ENCRYPTED_ONLY")),
        "nonce_store": _store(option("nonce_store", "WECHAT_NONCE_STORE"), "nonce_store"),
        "redis_url": str(option("redis_url", "WECHAT_REDIS_URL") or DEFAULT_REDIS_URL).strip(),
        "redis_prefix": str(option("redis_prefix", "WECHAT_REDIS_PREFIX") or DEFAULT_REDIS_PREFIX),
        "state": _store(option("state", "WECHAT_STATE"), "state"),
        "state_prefix": str(option("state_prefix", "WECHAT_STATE_PREFIX") or DEFAULT_STATE_PREFIX),
    }


def _durations(creds: dict[str, Any]) -> dict[str, float]:
    """The positive durations of credentials.yml (seconds); invalid ones fall back to the default."""
    names = ("passive_timeout", "followup_delay", "dedupe_ttl", "buttons_ttl", "pending_ttl", "http_timeout")
    return {name: _positive(creds.get(name), getattr(WeChatSettings, name), name) for name in names}


def settings_from(credentials: dict[str, Any] | None, environ: Mapping[str, str] | None = None) -> WeChatSettings:
    """Settings from credentials.yml (non-secret options) and the environment (secrets)."""
    creds = dict(credentials or {})
    env = os.environ if environ is None else environ
    for key, variable in ENV.items():
        if key in creds:
            logger.warning("wechat: '%s' in credentials.yml is ignored; set the %s environment variable", key, variable)
    secrets = {key: (env.get(variable) or "").strip() for key, variable in ENV.items()}
    api_base = str(creds.get("api_base") or env.get("WECHAT_API_BASE") or DEFAULT_API_BASE).strip().rstrip("/")
    return WeChatSettings(**secrets, api_base=api_base, menu=_menu(creds.get("menu")),
                          **_durations(creds), **_shared_settings(creds, env))

"""The WeChat API client: the access token and customer-service text messages.

aiohttp rather than wechatpy's WeChatClient: that one is synchronous (requests), which would block
Sanic's event loop for up to `http_timeout`, and it refreshes tokens per process. Here the token
lives in the channel's state (bot/channels/wechat/state.py): one replica fetches it under a
lease, the others wait for it and read the cached one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp

from bot.channels.wechat.codec import clean_text, mask
from bot.channels.wechat.settings import WeChatSettings
from bot.channels.wechat.state import StateUnavailable, WeChatState

logger = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid / malformed / expired access token
NOT_INTERACTED = 45015  # the user has not written to the account for 48 hours
TOKEN_POLL = 0.05  # seconds between looks at the cache while another replica refreshes the token
DEFAULT_LIFETIME = 7200.0


class WeChatApiError(Exception):
    """A failed call to the WeChat API (errcode -1 for network errors)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode


def _errcode(data: dict[str, Any]) -> int:
    try:
        return int(data.get("errcode") or 0)
    except (TypeError, ValueError):
        return -1


def _lifetime(data: dict[str, Any]) -> float:
    try:
        return float(data.get("expires_in", DEFAULT_LIFETIME))
    except (TypeError, ValueError):
        return DEFAULT_LIFETIME


class WeChatApi:
    """Access token (shared through the state, refreshed before expiry) and customer-service messages."""

    def __init__(self, settings: WeChatSettings, state: WeChatState) -> None:
        self.settings = settings
        self.state = state
        self._session: aiohttp.ClientSession | None = None

    @property
    def configured(self) -> bool:
        """Whether the app id and secret are set."""
        return bool(self.settings.app_id and self.settings.app_secret)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.http_timeout))
        return self._session

    async def close(self) -> None:
        """Close the HTTP client session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.settings.api_base}{path}"
        try:
            async with self._client().request(method, url, **kwargs) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise WeChatApiError(-1, f"{path}: {type(exc).__name__}") from exc
        if not isinstance(data, dict):
            raise WeChatApiError(-1, f"{path}: unexpected answer")
        return data

    async def _cached(self, stale: str) -> str:
        token = await self.state.access_token(self.settings.app_id)
        return token if token and token != stale else ""

    async def _fetch(self) -> str:
        """A new token from WeChat, cached for the others (called only while holding the lease)."""
        data = await self._call("GET", "/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": self.settings.app_id, "secret": self.settings.app_secret,
        })
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeChatApiError(_errcode(data) or -1, str(data.get("errmsg", "no access_token")))
        lifetime = _lifetime(data)
        await self.state.store_access_token(self.settings.app_id, token,
                                            max(60.0, lifetime - self.settings.token_margin))
        logger.info("wechat: fetched a new access token (valid %d s)", int(lifetime))
        return token

    async def access_token(self, stale: str = "") -> str:
        """A valid access token; `stale` is one WeChat just rejected, so it is not reused.

        The cached token when there is one; otherwise whoever gets the refresh lease fetches it
        (looking at the cache once more first: another may just have stored one), and everyone
        else waits for it to appear. WeChatApiError when none comes within two leases' time;
        StateUnavailable when the state cannot be reached."""
        deadline = time.monotonic() + 2 * self.state.ttls.lease
        while True:
            token = await self._cached(stale)
            if token:
                return token
            lease = await self.state.lease_token_refresh(self.settings.app_id)
            if lease is not None:
                try:
                    return await self._cached(stale) or await self._fetch()
                finally:
                    await lease.release()
            if time.monotonic() > deadline:
                raise WeChatApiError(-1, "no access token: another replica holds the refresh lease")
            await asyncio.sleep(TOKEN_POLL)

    async def _post_text(self, openid: str, body: bytes, stale: str) -> tuple[str, dict[str, Any]]:
        token = await self.access_token(stale)
        data = await self._call("POST", "/cgi-bin/message/custom/send", params={"access_token": token},
                                data=body, headers={"Content-Type": "application/json; charset=utf-8"})
        return token, data

    async def send_text(self, openid: str, content: str) -> bool:
        """Send a customer-service text message; True when WeChat accepted it. A rejected token is
        refreshed and the message sent once more; nothing is retried beyond that."""
        if not self.configured:
            logger.error("wechat: cannot send a delayed reply: WECHAT_APP_ID / WECHAT_APP_SECRET not set")
            return False
        body = json.dumps({"touser": openid, "msgtype": "text", "text": {"content": clean_text(content)}},
                          ensure_ascii=False).encode("utf-8")
        stale = ""
        for attempt in (1, 2):
            try:
                token, data = await self._post_text(openid, body, stale)
            except (WeChatApiError, StateUnavailable) as exc:
                logger.error("wechat: delayed reply to %s not sent: %s", mask(openid), exc)
                return False
            code = _errcode(data)
            if code == 0:
                return True
            if code in TOKEN_ERRORS and attempt == 1:
                logger.warning("wechat: access token rejected (%s), refreshing once", code)
                stale = token
                continue
            self._log_rejection(openid, code, data)
            return False
        return False

    @staticmethod
    def _log_rejection(openid: str, code: int, data: dict[str, Any]) -> None:
        if code == NOT_INTERACTED:
            logger.warning("wechat: %s has not interacted for 48 hours; the reply waits for their next message",
                           mask(openid))
        else:
            logger.error("wechat: delayed reply to %s rejected: %s %s", mask(openid), code, data.get("errmsg"))

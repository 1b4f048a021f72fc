"""Conversation ids (Rasa sender ids) per channel, so one channel cannot reach another's users.

A WeChat user's conversation is `wx-<OpenID>`; the REST channel refuses every sender in that
namespace, so a REST caller can neither read nor write a WeChat user's conversation. A REST request
without a sender gets a fresh id of its own instead of one shared `default` conversation.
"""

from __future__ import annotations

import uuid

WECHAT_PREFIX = "wx-"
RESERVED_PREFIXES = (WECHAT_PREFIX,)


def wechat_sender(openid: str) -> str:
    """The conversation id of a WeChat user."""
    return WECHAT_PREFIX + openid


def reserved(sender: str) -> bool:
    """Whether `sender` lies in another channel's namespace (case-insensitively: `WX-` too)."""
    return sender.lower().startswith(RESERVED_PREFIXES)


def new_rest_sender() -> str:
    """A conversation id for a REST request that names none (a uuid4, like the widget's)."""
    return str(uuid.uuid4())

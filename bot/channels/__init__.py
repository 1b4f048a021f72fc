"""Rasa input channels of the assistant: REST (rest.py) and the WeChat Official Account (the wechat package)."""

from __future__ import annotations

BUSY = "系统繁忙，请稍后再试，或拨打{phone}。"


def busy_reply() -> str:
    """What a user reads when the bot could not answer (action server down, a database or Redis
    that does not answer, any failure): never silence. The phone is the knowledge base's."""
    from bot.knowledge.store import consultation_phone

    return BUSY.format(phone=consultation_phone())

"""What every route of the bot's HTTP server shares, whoever registered the route (Rasa or us).

- A malformed `Content-Length` (not plain decimal digits, or two different values) is answered
  400 through Sanic's error handler. Sanic 21.12 itself calls int() on the header before any
  route, middleware or handler runs, so a bad value used to end as a 500 with a traceback; the
  check runs on Sanic's `http.lifecycle.request` signal, which fires just before that.
- WeChat's signature query strings (signature, timestamp, nonce, msg_signature) and Rasa's API
  `token` never reach a log line: a logging filter on Sanic's loggers (access and error log,
  which print the full URI) and on the root handlers rewrites their values to `[redacted]`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sanic import Sanic, response
from sanic.exceptions import InvalidUsage
from sanic.request import Request
from sanic.response import HTTPResponse

_DIGITS = re.compile(r"^[0-9]{1,18}$")
_SECRET_QUERY = re.compile(r"(?i)\b((?:msg_)?signature|timestamp|nonce|token)=[^&\s'\"#]*")
REDACTED = r"\1=[redacted]"
SANIC_LOGGERS = ("sanic.root", "sanic.error", "sanic.access", "sanic.server")
BAD_CONTENT_LENGTH = "请求头 Content-Length 无效（必须是一个十进制整数）"


class MalformedContentLength(InvalidUsage):
    """A request whose Content-Length header is not one plain decimal number."""

    status_code = 400
    quiet = True


def content_length_ok(values: list[str]) -> bool:
    """Whether the Content-Length header values (all occurrences) name one plain decimal length."""
    lengths = {value.strip() for value in values}
    return len(lengths) <= 1 and all(_DIGITS.match(value) for value in lengths)


async def check_content_length(request: Request) -> None:
    """Sanic signal handler (http.lifecycle.request): refuse a malformed Content-Length."""
    values = request.headers.getall("content-length", [])
    if values and not content_length_ok(values):
        raise MalformedContentLength(BAD_CONTENT_LENGTH)


def malformed_content_length(request: Request, exception: Exception) -> HTTPResponse:
    """The error handler's answer: 400 with a Chinese message; the connection then closes."""
    return response.json({"error": BAD_CONTENT_LENGTH}, status=400,
                         headers={"X-Content-Type-Options": "nosniff", "Connection": "close"})


def redact(text: str) -> str:
    """`text` with the values of signature-like query parameters replaced."""
    return _SECRET_QUERY.sub(REDACTED, text)


class RedactSignatures(logging.Filter):
    """Rewrites log records so that signed query strings never reach a log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the message and Sanic's access-log `request` field; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the formatter's problem, not ours
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        request_line: Any = getattr(record, "request", None)
        if isinstance(request_line, str):
            record.request = redact(request_line)
        return True


_FILTER = RedactSignatures()


def install_log_redaction() -> None:
    """Put the filter on Sanic's loggers and on every handler of the root logger (idempotent)."""
    targets: list[logging.Filterer] = [logging.getLogger(name) for name in SANIC_LOGGERS]
    targets += logging.getLogger().handlers
    for target in targets:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)


def guard_app(app: Sanic) -> None:
    """Install the Content-Length check and the log redaction on `app`."""
    app.signal("http.lifecycle.request")(check_content_length)
    app.error_handler.add(MalformedContentLength, malformed_content_length)
    install_log_redaction()

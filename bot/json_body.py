"""The one JSON reader every route of the bot shares (REST channel, widget, admin API).

`json.loads` alone is not safe on untrusted bodies under 64 KB: `"[" * 60000` raises
RecursionError, an integer of 5 000 digits raises ValueError (Python's limit on int
conversion), and `metadata` nested 900 levels deep parses but breaks whatever later
serialises it recursively. A lone surrogate (`"\\ud800"`) parses into a str that cannot be
encoded as UTF-8, so the reply, the tracker store or the feedback table fails later with a
UnicodeEncodeError. Here every such body is a `JsonBodyError` with a status
(400, or 413 for size) and a Chinese message for the caller: never an exception that
ends as a 500.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 32  # objects and arrays inside each other; real requests use 2 or 3
MAX_NUMBER_CHARS = 64  # digits of one number, sign and exponent included

TOO_LARGE = "请求体过大（最多 64 KB）"
NOT_JSON = "请求体必须是 UTF-8 编码的 JSON"
TOO_DEEP = f"JSON 嵌套层数过多（最多 {MAX_DEPTH} 层）"
BAD_NUMBER = f"JSON 中的数字过长或无效（最多 {MAX_NUMBER_CHARS} 位）"
NOT_OBJECT = "请求体必须是 JSON 对象"
BAD_TEXT = "JSON 中含有无效的字符（无法用 UTF-8 表示，例如单独的代理项 \\ud800）"


class JsonBodyError(ValueError):
    """A request body that is not acceptable JSON; `status` and a Chinese `message` for the reply."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class _BadNumber(ValueError):
    """Raised from inside the JSON scanner for a number we refuse."""


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _BadNumber(text[:16])
    return int(text)


def _real(text: str) -> float:
    value = float(text)
    if len(text) > MAX_NUMBER_CHARS or not math.isfinite(value):
        raise _BadNumber(text[:16])
    return value


def _constant(text: str) -> Any:
    raise _BadNumber(text)  # NaN, Infinity, -Infinity are not JSON


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone or reversed surrogate from a \uD800-\uDFFF escape
        return False
    return True


def value_problem(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """Why a parsed JSON value is refused: TOO_DEEP (objects/arrays deeper than `limit`), BAD_TEXT (a
    string or key UTF-8 cannot carry), else None. Iterative: no recursion on hostile input."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return BAD_TEXT
            continue
        if isinstance(item, dict):
            children: list[Any] = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return TOO_DEEP
        stack.extend((child, depth + 1) for child in children)
    return None


def read_json(body: bytes, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The JSON value of a request body; JsonBodyError for anything unacceptable."""
    if len(body) > max_bytes:
        raise JsonBodyError(TOO_LARGE, 413)
    try:
        value = json.loads(body.decode("utf-8"), parse_int=_integer, parse_float=_real, parse_constant=_constant)
    except _BadNumber:
        raise JsonBodyError(BAD_NUMBER) from None
    except RecursionError:
        raise JsonBodyError(TOO_DEEP) from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError and int()'s digit limit are all ValueErrors
        raise JsonBodyError(NOT_JSON) from None
    problem = value_problem(value)
    if problem is not None:
        raise JsonBodyError(problem)
    return value


def read_json_object(body: bytes, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """`read_json` for routes that take one JSON object."""
    value = read_json(body, max_bytes)
    if not isinstance(value, dict):
        raise JsonBodyError(NOT_OBJECT)
    return value

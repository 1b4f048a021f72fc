"""Request validation of the REST channel (pure part)."""

import json

import pytest

from bot.channels.rest import MAX_BODY_BYTES, parse_request


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "JSON"),
        (b"\xff\xfe", "UTF-8"),
        (b"[1, 2]", "JSON 对象"),
        (json.dumps({"sender": "a", "message": 5}).encode(), "message"),
        (json.dumps({"sender": "a"}).encode(), "message"),
        (json.dumps({"sender": "a b<script>", "message": "hi"}).encode(), "sender"),
        (json.dumps({"sender": "a", "message": "hi", "metadata": [1]}).encode(), "metadata"),
        (b"{" + b" " * MAX_BODY_BYTES + b"}", "过大"),
    ],
)
def test_rejected(body, error):
    payload, message = parse_request(body)
    assert payload is None and error in message


def test_accepted():
    payload, message = parse_request(json.dumps({"sender": "u-1", "message": "截止日期"}).encode())
    assert message == "" and payload == {"sender": "u-1", "message": "截止日期", "metadata": None}

"""The normaliser that runs before NLU."""

import pytest

from bot.text import MAX_CHARS, is_meaningful, normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("聯繫電話", "联系电话"),
        ("報名截止時間是什麼時候", "报名截止时间是什么时候"),
        ("联 系 人", "联系人"),
        ("怎么报名！！！", "怎么报名!"),
        ("截止日期？？？", "截止日期?"),
        ("ｋｅｐｕｒｉ网站", "kepuri网站"),
        ("app 在哪 下载", "app在哪下载"),
        ("  主场活动\t\n在哪  ", "主场活动在哪"),
        ("电话\x00\x07\u200b号码", "电话号码"),
        ("<script>alert(1)</script>截止日期", "alert(1)截止日期"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_long_input_is_capped():
    assert len(normalize("截止日期" * 2500)) == MAX_CHARS


@pytest.mark.parametrize(("text", "meaningful"), [("😀😀", False), ("。。。", False), ("abc", True), ("电话", True), ("123", True)])
def test_is_meaningful(text, meaningful):
    assert is_meaningful(text) is meaningful

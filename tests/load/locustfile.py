"""Locust users of `make loadtest`: people holding multi-turn conversations with the assistant.

Each user comes from an address of its own (X-Forwarded-For, which nginx passes on and the
replicas trust from it, so the rate limits count them as separate people) and holds one
conversation after another: a question, then follow-ups that only make sense with the first
turn's context ("那在哪", "谁负责"). A reply counts as a failure unless it is a 200 with the
sender's own messages, of the expected kind, containing the fact the question asks for, so a
follow-up answered without its context, an answer to another user's question or a "系统繁忙"
is an error. Think time: 2 to 6 s between messages, as a person reads and types.
"""

from __future__ import annotations

import itertools
import json
import uuid

from locust import FastHttpUser, between, task

# (question, what the answer must contain); every conversation's later turns lean on its first.
CONVERSATIONS: list[list[tuple[str, str]]] = [
    [("主场活动什么时候", "9月17日"), ("在哪里？", "第十一小学"), ("谁负责", "市科协")],
    [("科协代表大会哪天开", "9月14日"), ("那在哪", "黄河金岸花园大酒店"), ("有多少代表", "28")],
    [("有传真吗", "0955-8812012"), ("手机号呢？", "15109558601"), ("邮箱呢", "sptqkxjsj@163.com")],
    [("教育局牵头哪个行动", "行动"), ("卫健呢？", "卫生健康"), ("水利行动谁牵头", "水务")],
    [("截止日期是什么时候", "9月24日"), ("总结材料呢", "10月10日"), ("完善信息呢", "10月22日")],
    [("科普日主题是什么", "百年再出发"), ("活动时间呢", "9月13日"), ("怎么报名", "kepuri")],
]
_numbers = itertools.count(1)


class Visitor(FastHttpUser):
    """One person at the portal or in WeChat's web view, asking several things in a row."""

    wait_time = between(2, 6)

    def on_start(self) -> None:
        number = next(_numbers)
        self.address = f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"
        self.script = number % len(CONVERSATIONS)

    @task
    def converse(self) -> None:
        sender = f"load-{uuid.uuid4().hex[:12]}"
        for turn, (question, must) in enumerate(CONVERSATIONS[self.script % len(CONVERSATIONS)]):
            if turn:
                self.wait()
            if not self.ask(sender, turn, question, must):
                break  # the rest of this conversation would be judged without its context
        self.script += 1

    def ask(self, sender: str, turn: int, question: str, must: str) -> bool:
        body = json.dumps({"sender": sender, "message": question}, ensure_ascii=False)
        with self.client.post("/webhooks/rest/webhook", data=body.encode("utf-8"), catch_response=True,
                              name=f"turn {turn + 1}",
                              headers={"Content-Type": "application/json", "X-Forwarded-For": self.address}) as resp:
            problem = judge(resp.status_code, resp.text, sender, must)
            if problem:
                resp.failure(f"{question!r}: {problem}")
                return False
            resp.success()
            return True


def judge(status: int, text: str | None, sender: str, must: str) -> str:
    """Why a reply is wrong ('' when it is right)."""
    if status != 200:
        return f"HTTP {status}"
    try:
        messages = json.loads(text or "")
    except ValueError:
        return "not JSON"
    if not isinstance(messages, list) or not messages:
        return "no message"
    if any(m.get("recipient_id") != sender for m in messages):
        return "a reply for another conversation"
    kinds = {m.get("kind") for m in messages}
    said = "".join(m.get("text") or "" for m in messages)
    if "busy" in kinds:
        return "系统繁忙"
    if must not in said:
        return f"{must!r} missing from {said[:60]!r}"
    return ""

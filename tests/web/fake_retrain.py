"""A scripted retrain and rollback for the admin page's tests: a few seconds, nothing trained or swapped.

`ScriptedRetrain(outcome, step_seconds)` is called like bot.staff.retrain.retrain(progress=, full=):
it reports STEPS one after another, `step_seconds` apart, then returns a result shaped like
bot.staff.retrain.RetrainResult. `outcome` is "deploy" (the gate passes), "reject" (the gate
fails, nothing deployed) or "fail" (an error halfway). `scripted_rollback` stands in for
bot.staff.retrain.rollback. The test that uses one asserts on what the page makes of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

STEPS = [("检查知识库", 0.1), ("生成训练数据", 0.3), ("训练模型", 0.55), ("评估模型（门槛检查）", 0.8),
         ("部署新模型", 0.95)]
DEPLOYED_MODEL = "models/scripted-candidate.tar.gz"
PREVIOUS_MODEL = "models/scripted-previous.tar.gz"
FAILURE = "（测试）训练过程出错"


@dataclass
class ScriptedResult:
    """The fields of bot.staff.retrain.RetrainResult that the admin page reads."""

    deployed: bool
    model: str
    reason: str
    seconds: float
    gate: dict
    steps: list[tuple[str, float]]


@dataclass
class ScriptedRetrain:
    """A retrain that walks through STEPS and ends as `outcome` says; records each call's `full`."""

    outcome: str = "deploy"
    step_seconds: float = 0.01
    calls: list[bool] = field(default_factory=list)

    def __call__(self, progress: Callable[[str, float], None] | None = None, full: bool = False) -> ScriptedResult:
        self.calls.append(full)
        started = time.monotonic()
        steps: list[tuple[str, float]] = []
        for label, fraction in STEPS:
            if progress:
                progress(label, fraction)
            time.sleep(self.step_seconds)
            steps.append((label, round(time.monotonic() - started, 2)))
            if self.outcome == "fail" and fraction >= 0.5:
                raise RuntimeError(FAILURE)
        deployed = self.outcome == "deploy"
        if progress:
            progress("完成", 1.0)
        gate = {"candidate_accuracy": 0.97 if deployed else 0.81, "live_accuracy": 0.95, "passed": deployed,
                "checks": [{"question": "（测试）新增的常见问题", "ok": deployed}]}
        reason = ("（测试）各项指标均达到门槛，已部署" if deployed
                  else "（测试）候选模型准确率 81.0%，低于线上模型 95.0%，未部署，继续使用原模型")
        return ScriptedResult(deployed=deployed, model=DEPLOYED_MODEL if deployed else "", reason=reason,
                              seconds=round(time.monotonic() - started, 2), gate=gate, steps=steps)


def scripted_rollback() -> str:
    """A rollback that changes nothing and names PREVIOUS_MODEL as the model now live."""
    return PREVIOUS_MODEL

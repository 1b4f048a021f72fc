"""The grouping threshold of bot/staff/grouping.py, measured on tests/data/grouping_labelled.yml.

    python -m tests.bench.grouping_threshold

For each threshold: purity and coverage (bot.staff.grouping.purity_and_coverage) on the `tune`
groups, which choose it, and on the `check` groups, which only measure it. Also how often the
suggested answer (bot.staff.suggest) is the labelled fact, or "通知未涉及" when none is labelled.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.knowledge.loader import load_knowledge
from bot.staff import grouping
from bot.staff.reports import question_form
from bot.staff.suggestions import suggest

ROOT = Path(__file__).resolve().parents[2]
LABELLED = ROOT / "tests" / "data" / "grouping_labelled.yml"
THRESHOLDS = [round(0.06 + 0.02 * i, 2) for i in range(18)]
MIN_PURITY = 0.95  # the criterion: the highest `tune` coverage at this purity or more


def labelled(part: str) -> list[dict]:
    """The labelled groups of one part ("tune" or "check")."""
    groups = yaml.safe_load(LABELLED.read_text(encoding="utf-8"))["groups"]
    return [g for g in groups if g["set"] == part]


def items(part: str) -> tuple[list[str], list[str]]:
    """(questions in question_form, their labels) of one part, in a fixed order."""
    pairs = sorted((question_form(q), g["label"]) for g in labelled(part) for q in g["questions"])
    return [q for q, _ in pairs], [label for _, label in pairs]


def measure(part: str, threshold: float) -> tuple[float, float, int]:
    """(purity, coverage, number of groups) of one part at `threshold`."""
    questions, labels = items(part)
    clusters = grouping.cluster(questions, threshold)
    purity, coverage = grouping.purity_and_coverage(labels, clusters)
    return purity, coverage, len(set(clusters))


def chosen_threshold() -> float:
    """The threshold the criterion picks on the `tune` groups (the lowest of equals)."""
    scored = [(t, *measure("tune", t)[:2]) for t in THRESHOLDS]
    return max((row for row in scored if row[1] >= MIN_PURITY), key=lambda row: (row[2], -row[0]))[0]


def suggestion_hits(part: str) -> tuple[int, int]:
    """(groups whose suggestion is the labelled fact, or "通知未涉及" when none is labelled, groups)."""
    kb = load_knowledge(ROOT / "knowledge")
    right = 0
    groups = labelled(part)
    for g in groups:
        found = suggest(kb, [question_form(q) for q in g["questions"]])
        right += (g["suggest"] in found.facts) if g["suggest"] else not found.covered
    return right, len(groups)


def main() -> None:
    for part in ("tune", "check"):
        questions, labels = items(part)
        print(f"{part}: {len(questions)} questions in {len(set(labels))} labelled groups")
    print("threshold  tune purity/coverage/groups  check purity/coverage/groups")
    for threshold in THRESHOLDS:
        tune, check = measure("tune", threshold), measure("check", threshold)
        mark = "  <- THRESHOLD" if abs(threshold - grouping.THRESHOLD) < 1e-9 else ""
        print(f"{threshold:9.2f}  {tune[0]:6.3f} {tune[1]:6.3f} {tune[2]:4d}"
              f"             {check[0]:6.3f} {check[1]:6.3f} {check[2]:4d}{mark}")
    print(f"the criterion (highest tune coverage at purity >= {MIN_PURITY}) picks {chosen_threshold():.2f}")
    for part in ("tune", "check"):
        right, total = suggestion_hits(part)
        print(f"suggested answer as labelled ({part}): {right} of {total} groups")


if __name__ == "__main__":
    main()

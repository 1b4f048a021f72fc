"""Find the notice's named things in a (normalised) question.

Longest match wins and matches never overlap, so "科协代表大会" is the congress,
not the unit 科协. One alias may stand for values of several entity types
(乡村振兴 is a content item and a joint action); all of them are returned and
the dialogue chooses the one that fits the question.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.knowledge.model import KnowledgeSet


@dataclass(frozen=True)
class Match:
    """One entity found in the text, with character offsets."""

    type: str
    value: str
    start: int
    end: int
    text: str


class Gazetteer:
    """Alias table of all entity values; `find` scans a text left to right."""

    def __init__(self, aliases: dict[str, list[tuple[str, str]]]) -> None:
        self._aliases = {a.lower(): targets for a, targets in aliases.items() if a}
        self._longest = max((len(a) for a in self._aliases), default=0)

    @classmethod
    def from_knowledge(cls, kb: KnowledgeSet) -> Gazetteer:
        """Build the alias table from the knowledge set's entities."""
        table: dict[str, list[tuple[str, str]]] = {}
        for values in kb.entities.values():
            for ev in values.values():
                for alias in ev.aliases:
                    targets = table.setdefault(alias, [])
                    if (ev.type, ev.value) not in targets:
                        targets.append((ev.type, ev.value))
        return cls(table)

    def to_dict(self) -> dict[str, list[list[str]]]:
        """Serialisable form (stored inside the trained model)."""
        return {a: [list(t) for t in targets] for a, targets in self._aliases.items()}

    @classmethod
    def from_dict(cls, data: dict[str, list[list[str]]]) -> Gazetteer:
        """Inverse of `to_dict`."""
        return cls({a: [(t[0], t[1]) for t in targets] for a, targets in data.items()})

    def find(self, text: str) -> list[Match]:
        """All non-overlapping longest matches in `text`."""
        lowered = text.lower()
        found: list[Match] = []
        i = 0
        while i < len(lowered):
            for length in range(min(self._longest, len(lowered) - i), 0, -1):
                targets = self._aliases.get(lowered[i:i + length])
                if targets:
                    found.extend(Match(t, v, i, i + length, text[i:i + length]) for t, v in targets)
                    i += length
                    break
            else:
                i += 1
        return found

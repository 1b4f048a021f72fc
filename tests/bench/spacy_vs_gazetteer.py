"""Measured reason for not putting spaCy in the pipeline (README, "Measured choices").

    python -m tests.bench.spacy_vs_gazetteer

A blank spaCy `zh` pipeline with the jieba segmenter and an EntityRuler whose
patterns are every alias of knowledge/entities.yml, against the project's
character-level gazetteer (bot/knowledge/gazetteer.py), over the first user turn
of every held-out conversation: load time, time per message, and how often
spaCy misses an entity the gazetteer finds (jieba token boundaries that do not
line up with an alias).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from bot.knowledge.gazetteer import Gazetteer
from bot.knowledge.loader import load_knowledge
from bot.text import normalize

ROOT = Path(__file__).resolve().parents[2]


def first_turns() -> list[str]:
    """The normalised first user turn of every dev conversation (the holdout set is not studied)."""
    texts = []
    for path in sorted((ROOT / "tests" / "conversations" / "dev").glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        texts += [normalize(c["turns"][0]["user"]) for c in doc["conversations"]]
    return texts


def per_message_ms(find, texts: list[str]) -> tuple[list[set[str]], float]:
    start = time.perf_counter()
    found = [set(find(t)) for t in texts]
    return found, (time.perf_counter() - start) / len(texts) * 1000


def main() -> None:
    kb = load_knowledge(ROOT / "knowledge")
    texts = first_turns()
    gazetteer = Gazetteer.from_knowledge(kb)

    start = time.perf_counter()
    import spacy

    nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "ORTH", "overwrite_ents": True})
    ruler.add_patterns([{"label": f"{ev.type}:{ev.value}", "pattern": alias}
                        for values in kb.entities.values() for ev in values.values() for alias in ev.aliases])
    load_seconds = time.perf_counter() - start

    spacy_found, spacy_ms = per_message_ms(lambda t: (e.label_ for e in nlp(t).ents), texts)
    gaz_found, gaz_ms = per_message_ms(lambda t: (f"{m.type}:{m.value}" for m in gazetteer.find(t)), texts)
    print(json.dumps({
        "messages": len(texts),
        "spacy_load_s": round(load_seconds, 2),
        "spacy_ms_per_message": round(spacy_ms, 3),
        "gazetteer_ms_per_message": round(gaz_ms, 3),
        "messages_with_entities_spacy": sum(1 for f in spacy_found if f),
        "messages_with_entities_gazetteer": sum(1 for f in gaz_found if f),
        "messages_where_spacy_misses_an_entity": sum(1 for s, g in zip(spacy_found, gaz_found, strict=True) if g - s),
    }, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()

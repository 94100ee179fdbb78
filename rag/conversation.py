"""The chat's logic, kept out of ``app.py`` so that it can be tested without Streamlit.

Everything here is pure: turning answers into safe Markdown (escaped text, citation markers linked to
their source cards, the supporting sentence highlighted), the example questions, the generator setting
built from the sidebar's fields, the stage clock, and the conversation exported as Markdown.

Safety: report and answer text is never passed to Streamlit as HTML. It is escaped for Markdown
(``escape_markdown``): ``<``, ``>`` and ``&`` become HTML entities and every other ASCII punctuation
character that Markdown or Streamlit's directives give a meaning to gets a backslash, so the text can
form no tag, link, image, emphasis, heading, list, formula, emoji code or ``:color[…]`` directive. The
only markup in the result is the markup this module adds around already-escaped text: links to
``#cite-…`` anchors, ``:orange-background[…]`` for the highlighted sentence and ``:green-badge[…]`` /
``:red-badge[…]`` badges. Streamlit renders it with ``unsafe_allow_html`` left off.
"""
from __future__ import annotations

import dataclasses
import datetime
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rag.passages import Passage, from_citation

REPORT_TITLE = "Green Silk Road Development Report (2023)"
REPORT_TITLE_ZH = "绿色丝绸之路发展报告（2023）"
REPORT_LINE = (
    f"Ask the *{REPORT_TITLE}* ({REPORT_TITLE_ZH}) anything, in any language: China's green cooperation "
    "with Belt and Road partner countries: railways, ports, power plants, industrial parks, finance and climate "
    "projects. Every answer cites the report, in Chinese and English side by side."
)
ENGLISH_NOTE = "English: this project's translation, not the official edition"

# Questions on real report content (not the evaluation set), one per language, each answerable.
EXAMPLE_QUESTIONS: list[tuple[str, str]] = [
    ("zh", "中老铁路全线绿化总面积约是多少？"),
    ("en", "What share of total procurement value did green procurement reach in the Lomé airport "
           "expansion project?"),
    ("fr", "Quelle est la capacité installée totale de la centrale photovoltaïque de Jujuy en Argentine ?"),
    ("ja", "ガーナのテマ新コンテナターミナルで、海亀の孵化率は何パーセントでしたか？"),
    ("es", "¿Cuántas toneladas de emisiones de carbono evitará cada año el proyecto híbrido termosolar y "
           "fotovoltaico de Dubái?"),
    ("ar", "كم طنًا من الفحم القياسي ستوفره محطة كاروت للطاقة الكهرومائية (Karot) كل عام؟"),
]

STAGE_LABELS = {
    "searching": "Searching the report…",
    "reading": "Reading the evidence…",
    "writing": "Writing the answer…",
}
STAGE_DONE = {"searching": "Searched", "reading": "Read the evidence", "writing": "Wrote and checked the answer"}

# --------------------------------------------------------------------------------------------------
# Safe Markdown

# ASCII punctuation with a meaning in CommonMark, GFM, math or Streamlit's directives and emoji codes.
# ``<``, ``>``, ``&``, ``"`` and ``'`` are handled by HTML entities instead (a backslash before an entity
# would print the entity's name).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:=^])")
_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
MARKER_RE = re.compile(r"\[(\d{1,3})\]")


def escape_markdown(text: str) -> str:
    """Text that Streamlit's Markdown shows exactly as written, as inline content.

    Line breaks become Markdown hard breaks so a passage of several lines keeps them; runs of spaces and
    tabs collapse (they would otherwise start code blocks).
    """
    lines = []
    for line in str(text).splitlines():
        line = " ".join(line.split())
        line = "".join(_HTML_ENTITIES.get(ch, ch) for ch in line)
        lines.append(_MARKDOWN_SPECIAL.sub(r"\\\1", line))
    return "  \n".join(line for line in lines if line)


def anchor(turn: int, marker: int) -> str:
    """The id of a source card: ``cite-<turn>-<marker>`` (unique in the page)."""
    return f"cite-{turn}-{marker}"


def link_markers(text: str, turn: int, markers: Iterable[int]) -> str:
    """Escaped answer text whose ``[n]`` markers link to the source cards ``#cite-<turn>-<n>``.

    Markers with no card (not in ``markers``) stay plain text.
    """
    known = set(markers)
    parts, last = [], 0
    for match in MARKER_RE.finditer(text):
        parts.append(escape_markdown(text[last:match.start()]))
        number = int(match.group(1))
        if number in known:
            parts.append(f"[\\[{number}\\]](#{anchor(turn, number)})")
        else:
            parts.append(escape_markdown(match.group(0)))
        last = match.end()
    parts.append(escape_markdown(text[last:]))
    return "".join(parts)


def split_highlight(text: str, span: Sequence[int] | None) -> tuple[str, str, str]:
    """(before, highlighted, after); the span is clamped to the text, no span highlights nothing."""
    if not span or len(span) != 2:
        return text, "", ""
    start = max(0, min(int(span[0]), len(text)))
    end = max(start, min(int(span[1]), len(text)))
    return text[:start], text[start:end], text[end:]


def highlight_markdown(text: str, span: Sequence[int] | None) -> str:
    """Escaped ``text`` with the ``span`` on an orange background (Streamlit's Markdown directive)."""
    before, marked, after = split_highlight(text, span)
    if not marked.strip():
        return escape_markdown(text)
    pieces = [escape_markdown(before), f":orange-background[{escape_markdown(marked)}]", escape_markdown(after)]
    # Keep the directive apart from escaped neighbours: `\.` right before `:` is fine, a letter is not.
    return _join_inline(pieces)


def _join_inline(pieces: list[str]) -> str:
    out = ""
    for piece in pieces:
        if not piece:
            continue
        if out and piece.startswith(":") and out[-1].isalnum():
            out += " "
        out += piece
    return out


# How each outcome of an answer is marked above it (refusals are drawn as a warning or a note instead).
OUTCOME_BADGES = {
    "answered": ":green-badge[:material/fact_check: answer checked against the report]",
    "computed": ":blue-badge[:material/calculate: computed from two figures of the report]",
    "quoted": ":gray-badge[:material/format_quote: the report's own words]",
}


def outcome_badge(outcome: str) -> str:
    return OUTCOME_BADGES.get(outcome, "")


def badge_markdown(supported: bool) -> str:
    return ":green-badge[:material/check_circle: verified]" if supported \
        else ":red-badge[:material/error: not supported]"


# --------------------------------------------------------------------------------------------------
# What a turn holds


@dataclasses.dataclass
class Stage:
    name: str
    seconds: float


@dataclasses.dataclass
class Turn:
    question: str
    mode: str = "answer"  # answer | search
    answer: Any = None  # rag.answer.Answer
    passages: list[Passage] = dataclasses.field(default_factory=list)
    stages: list[Stage] = dataclasses.field(default_factory=list)
    notices: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (info|warning, text)
    error: str = ""
    error_level: str = "error"  # error | warning
    standalone: str = ""  # the question as searched and answered, when a follow-up was resolved


# "Understood as" and "ask as a new question", in the asker's language.
UNDERSTOOD_AS = {"zh": "理解为：", "en": "Understood as: ", "fr": "Compris comme : ", "es": "Entendido como: ",
                 "de": "Verstanden als: ", "ru": "Понято как: ", "ja": "次のように解釈しました：",
                 "ar": "فُهم على أنه: "}
ASK_AS_NEW = {"zh": "作为新问题提问", "en": "Ask as a new question", "fr": "Poser comme une nouvelle question",
              "es": "Preguntar como una pregunta nueva", "de": "Als neue Frage stellen",
              "ru": "Задать как новый вопрос", "ja": "新しい質問として聞く", "ar": "اطرحه كسؤال جديد"}


def understood(turn: Turn) -> str:
    """How a follow-up was understood, in the asker's language ('' when it was asked as it stands)."""
    if not turn.standalone or " ".join(turn.standalone.split()) == " ".join(turn.question.split()):
        return ""
    language = getattr(turn.answer, "language", "") or "en"
    return UNDERSTOOD_AS.get(language, UNDERSTOOD_AS["en"]) + turn.standalone


def ask_as_new_label(turn: Turn) -> str:
    return ASK_AS_NEW.get(getattr(turn.answer, "language", "") or "en", ASK_AS_NEW["en"])


def citation_passages(answer) -> list[Passage]:
    """One card per citation, the supporting sentence located in both languages (by the pipeline)."""
    return [from_citation(c) for c in answer.citations]


def closest_passages(answer) -> list[Passage]:
    """The passages offered with a refusal, numbered from 1 (built by the pipeline)."""
    return list(answer.closest)


def is_extractive(answer) -> bool:
    return str(answer.generator).startswith("extractive")


def extractive_note(answer) -> str:
    """The small print under an answer made of quoted report sentences ('' for a model's answer)."""
    if answer.refused or not is_extractive(answer):
        return ""
    if answer.note:
        return (f"The language model's answer could not be used ({answer.note}), so these are the report's "
                "own sentences, quoted.")
    return "Extractive mode: the report's own sentences, quoted (no language model)."


def shows_english(answer) -> bool:
    """Whether the answer quotes the English edition (so it must carry ENGLISH_NOTE)."""
    english = {c.sentence_en for c in answer.citations if c.sentence_en and c.sentence_en != c.sentence_zh}
    return is_extractive(answer) and any(quote in english for quote in answer.quotes)


def cut_notice(question: str, max_chars: int) -> str:
    """The warning for a question longer than the limit ('' when it fits)."""
    length = len(" ".join(str(question).split()))
    if length <= max_chars:
        return ""
    return (f"Your question has {length:,} characters; only the first {max_chars:,} were used. "
            "Shorter questions find better passages.")


# --------------------------------------------------------------------------------------------------
# Generator setting


BACKENDS = {
    "local": "Shipped local model (Qwen2.5 1.5B, 10–40 s per answer on a CPU)",
    "extractive": "Extractive: quote the report, no model (instant)",
    "hf": "Hugging Face model id (transformers, CPU)",
    "openai": "OpenAI-compatible server (vLLM, llama.cpp, Ollama)",
}


class SpecError(ValueError):
    """The generator fields do not make a usable setting; the message says what to fill in."""


def generator_spec(backend: str, hf_model: str = "", url: str = "", model: str = "") -> str:
    """The ``generator`` setting (see rag/llm.py) for the sidebar's fields."""
    if backend in ("local", "extractive"):
        return backend
    if backend == "hf":
        if not hf_model.strip():
            raise SpecError("enter a Hugging Face model id, e.g. Qwen/Qwen2.5-1.5B-Instruct")
        return f"hf:{hf_model.strip()}"
    if backend == "openai":
        url = url.strip()
        if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
            raise SpecError("the server URL must start with http:// or https://, e.g. http://localhost:8000/v1")
        if "|" in url or not model.strip() or "|" in model:
            raise SpecError("enter the model name the server serves (and no '|' in the URL or the name)")
        return f"openai:{url}|{model.strip()}"
    raise SpecError(f"unknown generator backend {backend!r}")


def parse_spec(spec: str) -> dict[str, str]:
    """The sidebar's fields for a ``generator`` setting (the inverse of ``generator_spec``)."""
    spec = (spec or "local").strip()
    kind, _, rest = spec.partition(":")
    if kind == "hf":
        return {"backend": "hf", "hf_model": rest}
    if kind == "openai":
        url, _, model = rest.rpartition("|")
        return {"backend": "openai", "openai_url": url, "openai_model": model}
    return {"backend": "extractive" if spec == "extractive" else "local"}


# --------------------------------------------------------------------------------------------------
# Stages and their timings


class StageClock:
    """Times the pipeline's stages from its events.

    A ``("stage", name)`` event starts a stage and ends the one before; ``("answer", …)`` ends the last
    stage.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self._current: str | None = None
        self._started = 0.0
        self.stages: list[Stage] = []

    def start(self, name: str) -> Stage | None:
        """Start ``name``; returns the stage that just ended, if any."""
        ended = self._end()
        self._current, self._started = name, self._clock()
        return ended

    def _end(self) -> Stage | None:
        if self._current is None:
            return None
        stage = Stage(self._current, max(0.0, self._clock() - self._started))
        self.stages.append(stage)
        self._current = None
        return stage

    def observe(self, kind: str, payload: object = None) -> tuple[Stage | None, str | None]:
        """(the stage that ended, the stage that started) for one pipeline event."""
        if kind == "stage":
            return self.start(str(payload)), str(payload)
        if kind == "answer":
            return self._end(), None
        return None, None

    def finish(self) -> list[Stage]:
        self._end()
        return self.stages


def format_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def stages_summary(stages: Sequence[Stage]) -> str:
    return " · ".join(f"{s.name} {format_seconds(s.seconds)}" for s in stages)


def status_label(turn: Turn) -> str:
    """The collapsed status line of a finished turn."""
    total = sum(s.seconds for s in turn.stages)
    if turn.error:
        return "Could not answer"
    if turn.mode == "search":
        return f"Found {len(turn.passages)} passages in {format_seconds(total)}"
    if turn.answer is not None and turn.answer.outcome == "out_of_scope":
        return f"Outside the report · checked in {format_seconds(total)}"
    if turn.answer is not None and turn.answer.refused:
        return f"Not in the report · checked in {format_seconds(total)}"
    return f"Answered in {format_seconds(total)}"


# --------------------------------------------------------------------------------------------------
# Index status and rebuild progress


def index_summary(manifest: dict) -> dict[str, str]:
    counts = manifest.get("counts", {})
    return {
        "embedder": str(manifest.get("embedder", "?")),
        "chunks": str(counts.get("chunks", "?")),
        "sentences": str(counts.get("sentences", "?")),
        "built": str(manifest.get("built_at", "?")).replace("T", " ").replace("+00:00", " UTC"),
        "languages": "+".join(manifest.get("languages", [])),
    }


_BUILD_STEPS = (
    (re.compile(r"^embedding (\d+) texts"), 0.10, "Embedding {0} passages (both languages)…"),
    (re.compile(r"^embedding (\d+) sentences"), 0.55, "Embedding {0} sentences for evidence selection…"),
)


def build_progress(message: str) -> tuple[float, str] | None:
    """(fraction done, text) for a log line of ``rag.index.build_index``; None for other lines."""
    for pattern, fraction, text in _BUILD_STEPS:
        match = pattern.search(message)
        if match:
            return fraction, text.format(*match.groups())
    return None


# --------------------------------------------------------------------------------------------------
# Export


def _quote_block(text: str) -> str:
    return "\n".join(f"> {line}" for line in str(text).splitlines() if line.strip()) or ">"


def conversation_markdown(turns: Sequence[Turn], now: datetime.datetime | None = None) -> str:
    """The conversation as a Markdown document: questions, answers with [n] markers, and their sources."""
    now = now or datetime.datetime.now()
    out = [f"# {REPORT_TITLE}: questions and answers", "",
           f"Exported {now:%Y-%m-%d %H:%M}. Sources are quoted in Chinese (the report) and in English "
           f"({ENGLISH_NOTE[len('English: '):]}).", ""]
    for number, turn in enumerate(turns, start=1):
        out += [f"## {number}. {' '.join(turn.question.split())}", ""]
        if understood(turn):
            out += [f"*{understood(turn)}*", ""]
        if turn.error:
            out += [f"*Not answered: {turn.error}*", ""]
            continue
        for _, notice in turn.notices:
            out += [f"*{notice}*", ""]
        answer = turn.answer
        if turn.mode == "search":
            out += [f"*Search only: {len(turn.passages)} passages, no answer written.*", ""]
        elif answer is not None:
            out += [answer.answer, ""]
            note = extractive_note(answer)
            details = [f"answer language: {answer.language}", f"generator: {answer.generator}"]
            out += [f"*{note}*" if note else "", f"*{', '.join(details)}*", ""]
            if answer.refused and turn.passages:
                out += ["Closest passages:", ""]
        if turn.passages:
            if turn.mode == "answer" and answer is not None and not answer.refused:
                out += ["### Sources", ""]
            for p in turn.passages:
                out += _passage_markdown(p)
    return "\n".join(line for i, line in enumerate(out) if line or (i and out[i - 1])).rstrip() + "\n"


def _passage_markdown(p: Passage) -> list[str]:
    badge = "" if p.supported is None else (" — verified" if p.supported else " — not supported")
    ids = f"chunk `{p.chunk_id}`" + (f", passages {', '.join(f'`{x}`' for x in p.passage_ids)}" if p.passage_ids else "")
    lines = [f"**[{p.number}]** {p.section}" + (f" ({p.section_en})" if p.section_en else "") + f" — {ids}{badge}", ""]
    zh_before, zh_marked, zh_after = split_highlight(p.zh, p.span_zh)
    en_before, en_marked, en_after = split_highlight(p.en, p.span_en)
    if zh_marked:
        lines += [_quote_block(zh_marked), ""]
        if en_marked:
            lines += [_quote_block(f"English: {en_marked}"), ""]
    else:
        lines += [_quote_block(p.zh), ""]
        if p.en:
            lines += [_quote_block(f"English: {p.en}"), ""]
    lines += [line for note in p.notes for line in (f"*Translator's note: {' '.join(note.split())}*", "")]
    return lines


_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]*$")


def code(value: str) -> str:
    """A code span for an id made of safe characters (letters, digits, ``-_.:/``), else escaped text."""
    return f"`{value}`" if _SAFE_ID.match(value) else escape_markdown(value)


def ids_markdown(chunk_id: str, passage_ids: Sequence[str]) -> str:
    """``chunk `c-…` · passage `p-…` `` (code spans only for ids made of safe characters)."""
    text = f"chunk {code(chunk_id)}"
    if passage_ids:
        text += f" · passage{'s' if len(passage_ids) > 1 else ''} " + ", ".join(code(p) for p in passage_ids)
    return text

"""The question-answering pipeline: search → evidence → (refuse | phrase → check → retry | quote) → cite.

``Pipeline.stream`` yields events as work completes, for the CLI and the Streamlit app alike:
``("stage", name)``, ``("evidence", [Citation])`` within ~200 ms, ``("token", text)`` while the model
writes, and finally ``("answer", Answer)``, whose text and badges replace whatever was streamed (the
checks run at the end). ``Pipeline.ask`` returns the final Answer.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator

from rag import citations as cite
from rag import config, prompts
from rag.evidence import Evidence, EvidenceSelection, EvidenceSelector
from rag.questions import clean_question
from rag.retrieval import Retriever

log = logging.getLogger(__name__)
EXTRACTIVE = "extractive"
QUOTE_LANGUAGE = {"zh": "zh", "ja": "zh"}  # other languages read the English edition


@dataclasses.dataclass
class Citation:
    marker: int
    chunk_id: str
    passage_ids: list[str]
    section: str
    zh: str
    en: str
    sentence_zh: str
    sentence_en: str
    span: tuple[int, int]  # the supporting sentence inside ``zh``, for highlighting
    supported: bool = False


@dataclasses.dataclass
class Answer:
    question: str
    language: str
    answer: str
    refused: bool
    citations: list[Citation]
    generator: str
    timings: dict[str, float]
    quotes: list[str] = dataclasses.field(default_factory=list)  # evidence in the reader's language
    closest: list[dict] = dataclasses.field(default_factory=list)  # passages offered with a refusal
    note: str = ""  # why the answer is extractive, when it is
    standalone: str = ""  # the question as searched and answered: a follow-up resolved (rag/followup.py)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _citation(marker: int, evidence: Evidence) -> Citation:
    chunk, sentence = evidence.chunk, evidence.sentence
    return Citation(marker, chunk.id, list(chunk.passage_ids), chunk.section, chunk.zh, chunk.en,
                    sentence.zh, sentence.en, sentence.span)


def _quote(citation: Citation, language: str) -> str:
    return citation.sentence_zh if QUOTE_LANGUAGE.get(language) == "zh" or not citation.sentence_en else citation.sentence_en


class Pipeline:
    """Models and index load once; ``stream``/``ask`` may be called from several threads."""

    def __init__(self, settings: config.Settings | None = None, progress: bool = False):
        self.settings = settings or config.load_settings()
        self.retriever = Retriever(self.settings, progress=progress)
        self.selector = EvidenceSelector(self.retriever)

    def ask(self, question: str, **options) -> Answer:
        answer = None
        for kind, payload in self.stream(question, **options):
            if kind == "answer":
                answer = payload
        return answer

    def stream(self, question: str, *, history=(), **options) -> Iterator[tuple[str, object]]:
        """Resolve the question against ``history`` (earlier ``followup.HistoryTurn``s, oldest first), emit
        ``("standalone", text)``, then answer the standalone question; the Answer keeps both."""
        from rag.followup import names_for, resolve
        from rag.language import detect_language

        start = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        resolution = resolve(question, history, names_for(self.retriever))
        resolve_ms = _ms(start)
        yield "standalone", resolution.standalone
        if resolution.depends and not options.get("language"):
            options["language"] = detect_language(question)  # the asker's, not the carried subject's
        for kind, payload in self._stream_standalone(resolution.standalone, **options):
            if kind == "answer":
                payload = dataclasses.replace(payload, question=question, standalone=resolution.standalone,
                                              timings={**payload.timings, "resolve_ms": resolve_ms})
            yield kind, payload

    def _stream_standalone(self, question: str, *, generator: str | None = None, k: int | None = None,
                           language: str | None = None) -> Iterator[tuple[str, object]]:
        start = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        yield "stage", "searching"
        result = self.retriever.search(question, k or self.settings.top_k)
        yield "stage", "reading"
        selection = self.selector.select(result)
        language = language or result.language
        citations = [_citation(i, e) for i, e in enumerate(selection.sentences, start=1)]
        timings = {"retrieve_ms": _ms(start)}
        yield "evidence", citations
        spec = generator or self.settings.generator
        if not self.answerable(selection):
            yield "answer", self._refusal(question, language, result, spec, timings, start)
            return
        yield "stage", "writing"
        answer = yield from self._phrase(question, language, selection, citations, spec, timings, start)
        yield "answer", answer

    def answerable(self, selection: EvidenceSelection) -> bool:
        return selection.answerable(self.settings.refusal_threshold, self.settings.refusal_threshold_meaning_only)

    def _refusal(self, question, language, result, spec, timings, start) -> Answer:
        closest = [{"chunk_id": h.chunk.id, "section": h.chunk.section, "zh": h.chunk.zh, "en": h.chunk.en}
                   for h in result.hits[:3]]
        timings["total_ms"] = _ms(start)
        return Answer(question, language, prompts.localized(prompts.REFUSALS, language), True, [], spec,
                      timings, closest=closest)

    def _phrase(self, question, language, selection: EvidenceSelection, citations, spec, timings, start):
        """Generator: yields ("token", …) events, returns the checked Answer (or the extractive one)."""
        if spec == EXTRACTIVE:
            return self._extractive(question, language, citations, spec, timings, start, note="")
        from rag.llm import GeneratorUnavailable, get_generator

        facts = "\n".join(f"[{c.marker}] {_quote(c, language)}" for c in citations)
        messages = [{"role": "system", "content": prompts.SYSTEM},
                    {"role": "user", "content": prompts.USER.format(
                        facts=facts, question=question, language_name=prompts.language_name(language))}]
        evidence = [text for c in citations for text in (c.sentence_zh, c.sentence_en) if text]
        context = "\n".join(f"{c.section}\n{c.zh}\n{c.en}" for c in citations)
        problems: list[str] = []
        for _ in range(2):  # the first answer, then one retry with the failure named
            text = ""
            try:
                model = get_generator(spec, self.settings.cache_dir, timeout_s=self.settings.generator_timeout_s)
                for piece in model.stream(messages, max_tokens=self.settings.max_answer_tokens):
                    timings.setdefault("first_token_ms", _ms(start))
                    text += piece
                    yield "token", piece
            except (GeneratorUnavailable, ValueError) as error:  # ValueError: a generator spec we cannot read
                log.warning("generator unavailable: %s", error)
                problems = [str(error)]
                if isinstance(error, ValueError):
                    break
                continue
            if prompts.NOT_FOUND in text:
                # Refusals come from the calibrated evidence score; a small model's NOT_FOUND on evidence
                # that passed it is more often wrong than right, so the reader gets the quote instead.
                problems = ["the model found no answer in the evidence"]
                break
            check = cite.check_answer(text, evidence, language, self.retriever.embedder, self.retriever.glossary,
                                      context, question)
            if check.ok:
                return self._compose(question, language, text, citations, model.name, timings, start)
            problems = check.problems
            log.debug("answer check failed (%s): %s", "; ".join(problems), text)
            messages += [{"role": "assistant", "content": text},
                         {"role": "user", "content": prompts.RETRY.format(
                             problem="; ".join(problems), language_name=prompts.language_name(language))}]
        return self._extractive(question, language, citations, spec, timings, start,
                                note="; ".join(problems))

    def _compose(self, question, language, text, citations, generator, timings, start) -> Answer:
        """Attach markers to each answer sentence from the evidence that supports it."""
        evidence = [f"{c.sentence_zh} {c.sentence_en}" for c in citations]
        parts, used = [], set()
        for sentence in cite.split_answer(text):
            markers = cite.support_markers(sentence, evidence, self.retriever.embedder)
            used.update(markers)
            parts.append(sentence + "".join(f"[{m}]" for m in markers))
        kept = [dataclasses.replace(c, supported=True) for c in citations if c.marker in used]
        timings["total_ms"] = _ms(start)
        joiner = "" if language in ("zh", "ja") else " "
        return Answer(question, language, joiner.join(parts), False, kept, generator, timings,
                      quotes=[_quote(c, language) for c in kept])

    def _extractive(self, question, language, citations, spec, timings, start, note) -> Answer:
        """The evidence sentences themselves, quoted and cited: always true to the report."""
        quoted = [dataclasses.replace(c, supported=True) for c in citations]
        body = " ".join(f"{_quote(c, language)}[{c.marker}]" for c in quoted)
        timings["total_ms"] = _ms(start)
        return Answer(question, language, f"{prompts.localized(prompts.EXTRACTIVE_LABELS, language)} {body}",
                      False, quoted, EXTRACTIVE if spec == EXTRACTIVE else f"{EXTRACTIVE} (fallback from {spec})",
                      timings, quotes=[_quote(c, language) for c in quoted], note=note)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)

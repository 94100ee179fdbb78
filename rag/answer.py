"""The question-answering pipeline: resolve → search → evidence → (out of scope | compute | not in the report
| phrase → check → retry | quote) → cite. Every Answer has one of OUTCOMES (docs/design.md).

``Pipeline.stream`` yields events as work completes, for the CLI and the Streamlit app alike:
``("standalone", text)`` (the question as understood), ``("stage", name)``, ``("evidence", [Citation])``
within ~200 ms, ``("token", text)`` while the model writes, ``("reset", None)`` before a retry replaces
the streamed text, and finally ``("answer", Answer)``, whose text and badges replace whatever was
streamed (the checks run at the end). ``Pipeline.ask`` returns the final Answer.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import re
import time
from collections.abc import Iterator

from rag import arithmetic, units
from rag import citations as cite
from rag import config, prompts
from rag.asked import ending_premise_missing, missing_names, years_tied_elsewhere
from rag.glossary import names_zh
from rag.language import HAN_RE
from rag.evidence import Evidence, EvidenceSelection, EvidenceSelector
from rag.evidence import coverage as evidence_coverage
from rag.passages import Found, Passage, find_span, from_chunk, section_en
from rag.questions import clean_question
from rag.retrieval import Retriever

log = logging.getLogger(__name__)
EXTRACTIVE = "extractive"
QUOTE_LANGUAGE = {"zh": "zh", "ja": "zh"}  # other languages read the English edition
# Every answer is exactly one of these; the last two are refusals (``Answer.refused``).
ANSWERED, COMPUTED, QUOTED, NOT_IN_REPORT, OUT_OF_SCOPE = (
    "answered", "computed", "quoted", "not_in_report", "out_of_scope")
OUTCOMES = (ANSWERED, COMPUTED, QUOTED, NOT_IN_REPORT, OUT_OF_SCOPE)
MAX_QUOTED = 2  # a quoted answer is the one or two sentences that hold the answer; the card has the rest
# A question whose words the report mostly uses is about the report, however far its meaning scores:
# "How many tunnels were built on the Thakot–Raikot realignment?" (cosine 0.796, words 0.82).
SCOPE_MAX_WORDS = 0.6
# Requests that are not questions about any document: jokes, poems, greetings, the weather.
CHIT_CHAT = re.compile(
    r"\bjokes?\b|\bpoem\b|\bhow are you\b|\bwho are you\b|^(?:hi|hello|hey)\b|\bweather\b|笑话|写一?首诗|你是谁|^你好|天气|"
    r"\bblague|\bpoème|\bchiste|\bpoema\b|\bWitz\b|\bGedicht|анекдот|шутк|стих|نكتة|قصيدة|冗談|ジョーク|詩を",
    re.IGNORECASE)
MAX_ANSWER_SENTENCES = 2  # a phrased answer is short: the prompt asks for two sentences, code holds it there


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
    supported: bool = False  # this passage was checked to support the claim it is cited for
    section_en: str = ""
    span_en: tuple[int, int] | None = None  # the supporting sentence inside ``en``
    notes: tuple[str, ...] = ()  # translator's notes on the passage (shown on its card)
    # where the passage comes from: {"collection", "document", "page"} (rag/chunking.Chunk.source)
    source: dict = dataclasses.field(default_factory=dict)


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
    closest: list[Passage] = dataclasses.field(default_factory=list)  # passages offered with a refusal
    note: str = ""  # why the answer is extractive, when it is
    standalone: str = ""  # the question as searched and answered: a follow-up resolved (rag/followup.py)
    outcome: str = ANSWERED  # one of OUTCOMES
    working: str = ""  # for a computed answer: the computation, e.g. "22.6 亿吨 − 5.73 亿吨 = 16.87 亿吨"
    kind: str = "single"  # the question's kind (rag/broad.py): single, list, overview or compare
    subject: str = ""  # the subject carried over from the conversation (rag/followup.py), "" when none

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def answer_row(answer: Answer) -> dict:
    """An Answer as ``rag ask --json`` prints it and ``rag serve`` returns it: every field, spans as lists."""
    row = answer.to_json()
    row["citations"] = [{**c, "span": list(c["span"])} for c in row["citations"]]
    return row


def citation_of(marker: int, chunk, sentence, supported: bool = False) -> Citation:
    """The citation of ``sentence`` (a ``chunking.Sentence``) in ``chunk``, located in both languages."""
    return Citation(marker, chunk.id, list(chunk.passage_ids), chunk.section, chunk.zh, chunk.en,
                    sentence.zh, sentence.en, tuple(sentence.span), supported, section_en(chunk),
                    find_span(chunk.en, sentence.en), tuple(chunk.notes), source=chunk.source)


def _citation(marker: int, evidence: Evidence) -> Citation:
    return citation_of(marker, evidence.chunk, evidence.sentence)


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

    def _resolve(self, question: str, history):
        """The question cleaned (once: raises QuestionError for an empty one) and resolved against
        ``history`` (earlier ``followup.HistoryTurn``s, oldest first)."""
        from rag.followup import names_for, resolve

        return resolve(clean_question(question, self.settings.max_question_chars), history, names_for(self.retriever))

    def stream(self, question: str, *, history=(), **options) -> Iterator[tuple[str, object]]:
        """Resolve the question against ``history``, emit ``("standalone", text)``, then answer the
        standalone question; the Answer keeps both, and the subject carried over."""
        from rag.language import detect_language

        start = time.perf_counter()
        resolution = self._resolve(question, history)
        resolve_ms = _ms(start)
        yield "standalone", resolution.standalone
        if resolution.depends and not options.get("language"):
            options["language"] = detect_language(resolution.question)  # the asker's, not the carried subject's
        for kind, payload in self._stream_standalone(resolution.standalone, **options):
            if kind == "answer":
                payload = dataclasses.replace(payload, question=resolution.question, standalone=resolution.standalone,
                                              subject=resolution.subject,
                                              timings={**payload.timings, "resolve_ms": resolve_ms})
            yield kind, payload

    def search(self, question: str, *, history=(), k: int | None = None, collections: list[str] | None = None) -> Found:
        """Search-only mode: the passages for the question (a follow-up resolved first), each with its
        sentence closest to the question marked, no answer written."""
        start = time.perf_counter()
        resolution = self._resolve(question, history)
        result = self.retriever.search(resolution.standalone, k or self.settings.top_k, collections=collections)
        sentences = self.retriever.index.sentences
        passages = []
        for number, hit in enumerate(result.hits, start=1):
            best = self.retriever.best_sentence(hit.position, result.sentence_scores)
            passages.append(from_chunk(number, hit.chunk, None if best is None else sentences[best].sentence,
                                       float(hit.score)))
        timings = {**{k: round(v, 2) for k, v in result.timings_ms.items()}, "total_ms": _ms(start)}
        return Found(resolution.question, resolution.standalone, resolution.subject, result.language, passages, timings)

    def _stream_standalone(self, question: str, *, generator: str | None = None, k: int | None = None,
                           language: str | None = None, collections: list[str] | None = None,
                           ) -> Iterator[tuple[str, object]]:
        """``collections``: search only these (rag/collections.py); default: the retriever's, else all."""
        start = time.perf_counter()
        from rag.broad import SINGLE, classify  # overviews, lists, comparisons: rag/broad_answers.py
        from rag.broad_answers import broad_events

        searched = collections or self.retriever.collections
        report = not searched or config.REPORT_SLUG in searched  # lists and overviews read the report only
        if report and (kind := classify(question)) != SINGLE and (
                events := broad_events(self, question, kind, language, start)):
            yield from events
            return
        yield "stage", "searching"
        result = self.retriever.search(question, k or self.settings.top_k, collections=collections)
        timings = {"search_ms": _ms(start), **{k: round(v, 2) for k, v in result.timings_ms.items()}}
        yield "stage", "reading"
        selection = self.selector.select(result)
        language = language or result.language
        spec = generator or self.settings.generator
        timings["retrieve_ms"] = _ms(start)  # search + evidence, from the question's arrival
        timings["evidence_ms"] = round(timings["retrieve_ms"] - timings["search_ms"], 1)
        if self.out_of_scope(question, result, selection):
            yield "evidence", []
            yield "answer", self._refusal(question, language, selection, [], spec, timings, start, OUT_OF_SCOPE)
            return
        citations = [_citation(i, e) for i, e in enumerate(selection.sentences, start=1)]
        yield "evidence", citations
        operation = arithmetic.operation(question)
        if operation and (computed := self._computed(operation, question, language, selection, timings, start)):
            yield "answer", computed
            return
        missing = self.premise_missing(question, result, selection)
        if not self.answerable(selection) or not selection.holds_asked or missing:
            note = f"the passages never mention {', '.join(missing)}" if missing else ""
            yield "answer", self._refusal(question, language, selection, [h.chunk for h in result.hits], spec, timings,
                                          start, note=note)
            return
        yield "stage", "writing"
        answer = yield from self._phrase(question, language, selection, citations, spec, timings, start)
        yield "answer", answer

    @functools.cached_property
    def report_names(self) -> list[str]:
        """The Chinese of every name in the report's glossary (the things a year can be tied to)."""
        return [t.zh_plain for t in self.retriever.glossary if t.zh_plain]

    def answerable(self, selection: EvidenceSelection) -> bool:
        return selection.answerable(self.settings.refusal_threshold, self.settings.refusal_threshold_meaning_only)

    def premise_missing(self, question: str, result, selection: EvidenceSelection) -> list[str]:
        """What the question takes for granted that the chosen passages never mention: a Chinese
        question's place, an ending (closed, stopped) of what they describe, or a year they give to
        something else than what the question ties it to."""
        context = _context(selection)
        missing = missing_names(question, result.language, context)
        if ending_premise_missing(question, context):
            missing.append("the ending the question presupposes")
        names = names_zh(question, self.retriever.glossary, result.expansion)
        for year in years_tied_elsewhere(question, names, self.report_names, [e.sentence.zh for e in selection.sentences]):
            missing.append(f"{year} as the year of {', '.join(names)}")
        return missing

    def _agrees_not_found(self, selection: EvidenceSelection) -> bool:
        """The model's NOT_FOUND is taken when the evidence does not contradict it: no particular kind of
        value was asked (a value of the asked kind about the asked thing would contradict it) and the
        evidence score is below the higher bar ``refusal_threshold_not_found``."""
        return selection.asked.kind is None and selection.best_score < self.settings.refusal_threshold_not_found

    def out_of_scope(self, question: str, result, selection: EvidenceSelection) -> bool:
        """Not about the report: nothing to read (only punctuation or emoji), chit-chat, or no sentence of the
        report comes near it in meaning and few of its words are the report's ("What is the capital of
        France?": cosine 0.79, and only "capital" matches). Calibrated in docs/evaluation.md."""
        if not any(ch.isalnum() for ch in question) or CHIT_CHAT.search(question):
            return True
        scores = result.sentence_scores
        if scores is None or len(scores) == 0 or self.settings.embedder != config.SHIPPED_EMBEDDER:
            return False  # the similarity bar is calibrated on the shipped e5's cosines only
        words = max((e.words for e in selection.ranked), default=0.0)
        return float(scores.max()) < self.settings.scope_min_similarity and words < SCOPE_MAX_WORDS

    def _refusal(self, question, language, selection, chunks, spec, timings, start, outcome=NOT_IN_REPORT,
                 note="") -> Answer:
        """Not in the report (naming what was asked, the closest passages offered as context, no badge; "the
        documents searched" when the user's documents were searched too), or out of scope (what the assistant
        is for, no passages)."""
        unique = list({c.id: c for c in chunks}.values())[:3]
        closest = [from_chunk(number, chunk) for number, chunk in enumerate(unique, start=1)]
        if outcome == OUT_OF_SCOPE:
            text = prompts.localized(prompts.OUT_OF_SCOPE_DOCUMENTS if selection.documents else prompts.OUT_OF_SCOPE,
                                     language)
        else:
            phrases = prompts.localized(prompts.ASKED_PHRASES, language)
            subject = self._subject(question, language)
            about = prompts.localized(prompts.ABOUT, language).format(subject=subject) if subject else ""
            refusals = prompts.REFUSALS_DOCUMENTS if selection.documents else prompts.REFUSALS
            text = prompts.localized(refusals, language).format(
                asked=phrases.get(selection.asked.kind, phrases[None]), about=about)
        timings["total_ms"] = _ms(start)
        return Answer(question, language, text, True, [], spec, timings, closest=closest, note=note, outcome=outcome)

    def _subject(self, question: str, language: str) -> str:
        """What the question is about, in the report's own names (the glossary), in the asker's edition:
        "中老铁路全线共有多少座隧道？" → 中老铁路; "… the Karot hydropower station?" → Karot Hydropower Station."""
        named = [t for t in self.retriever.glossary
                 if (t.zh_plain and t.zh_plain in question)
                 or (len(t.en) >= 3 and re.search(rf"(?<!\w){re.escape(t.en)}(?!\w)", question, re.IGNORECASE))]
        names = [t.zh_plain if QUOTE_LANGUAGE.get(language) == "zh" else t.en
                 for t in sorted(named, key=lambda t: -len(t.en))]
        kept = [n for n in names if not any(n != other and n in other for other in names)]
        return "、".join(kept[:2]) if QUOTE_LANGUAGE.get(language) == "zh" else ", ".join(kept[:2])

    def _computed(self, operation, question, language, selection, timings, start) -> Answer | None:
        """Two facts found and combined by code (rag/arithmetic.py), both cited; None when either is missing."""
        ranked = [(e.position, e.sentence.zh, e.sentence.en, e.chunk.section_zh[-1]) for e in selection.ranked]
        parts = arithmetic.parts(question)
        if operation in arithmetic.TWO_PARTS and len(parts) < 2:
            return None
        found = arithmetic.candidates(operation, ranked)
        scorers = self._part_scorers(parts, found)
        chunk_of = {e.position: e.chunk.id for e in selection.ranked}
        chosen = arithmetic.choose(operation, found, scorers, frozenset(units.named_unit_kinds(question)), question,
                                   lambda a, b: chunk_of.get(a.position) == chunk_of.get(b.position))
        result = arithmetic.compute(operation, *chosen, question, language) if chosen else None
        if result is None:
            return None
        sentences = self.retriever.index.sentences
        citations = [citation_of(i, self.retriever.chunks[sentences[o.position].chunk], sentences[o.position].sentence,
                                 supported=True)
                     for i, o in enumerate(result.operands, start=1)]
        timings["total_ms"] = _ms(start)
        label = prompts.localized(prompts.COMPUTED_LABELS, language)
        return Answer(question, language, f"{label} {result.working} [1][2]", False, citations, "arithmetic", timings,
                      quotes=[_quote(c, language) for c in citations], outcome=COMPUTED, working=result.working)

    def _part_scorers(self, parts: list[str], found: list) -> list:
        """For each part of a two-fact question, a rating of the i-th candidate value: the part against the
        value's sentence and against the words around the value (what it is the value of), in meaning and
        in keywords. Measured on multihop_dev: the sentence alone confuses values of one sentence, the
        clause alone loses which event a date belongs to; together they pick 10 of 14 (see evaluation.md)."""
        if not found:
            return [lambda i: 0.0 for _ in parts]
        embedder = self.retriever.embedder
        queries = embedder.encode_queries(parts)
        clause_meaning = queries @ embedder.encode_passages([c.clause for c in found]).T
        positions = [c.operand.position for c in found]
        sentence_meaning = [self.retriever.sentence_scores(queries[row:row + 1])[positions] for row in range(len(parts))]
        keywords = [self.selector.keyword_weights(part) for part in parts]  # once per part, not per value
        coverage = [[evidence_coverage(weights, c.clause) for c in found] for weights in keywords]
        return [lambda i, row=row: float(clause_meaning[row, i] + sentence_meaning[row][i]) / 2 + coverage[row][i]
                for row in range(len(parts))]

    def _phrase(self, question, language, selection: EvidenceSelection, citations, spec, timings, start):
        """Generator: yields ("token", …) events (and ("reset", None) before a retry), returns the checked
        Answer, a quoted one, or — when the model finds no answer and the evidence agrees — a refusal."""
        if spec == EXTRACTIVE:
            return self._quoted(question, language, selection, citations, spec, timings, start, note="")
        from rag.llm import GeneratorUnavailable, get_generator

        prompt_start = time.perf_counter()
        messages = prompts.build_messages([_quote(c, language) for c in citations], question, language)
        timings["prompt_ms"] = _ms(prompt_start)
        evidence = [text for c in citations for text in (c.sentence_zh, c.sentence_en) if text]
        # The evidence sentences' vectors were stored at build time: the checks encode only the answer.
        vectors = self.retriever.index.sentence_vectors[[e.position for e in selection.sentences]]
        measures = [self.selector.measures[e.position] for e in selection.sentences]  # read once per corpus
        context = "\n".join(f"{c.section}\n{c.zh}\n{c.en}" for c in citations)
        problems: list[str] = []
        for attempt in range(2):  # the first answer, then one retry with the failure named
            text = ""
            if attempt:
                yield "reset", None  # the live view drops the failed attempt's tokens
            try:
                model = get_generator(spec, self.settings.cache_dir, timeout_s=self.settings.generator_timeout_s)
                text = yield from self._generate(model, messages, timings, start)
            except (GeneratorUnavailable, ValueError) as error:  # ValueError: a generator spec we cannot read
                log.warning("generator unavailable: %s", error)
                problems = [str(error)]
                break  # a second call would wait for the same timeout again
            if prompts.NOT_FOUND in text:
                if self._agrees_not_found(selection):
                    return self._refusal(question, language, selection, [e.chunk for e in selection.sentences], spec,
                                         timings, start, note="the model found no answer, and the evidence agrees")
                problems = ["the model found no answer in the evidence"]
                break
            check_start = time.perf_counter()
            check = cite.check_answer(text, evidence, language, self.retriever.embedder, self.retriever.glossary,
                                      context, question, selection.asked, vectors, [m for ms in measures for m in ms])
            timings["check_ms"] = timings.get("check_ms", 0.0) + _ms(check_start)
            if check.ok:
                return self._compose(question, language, text, citations, (vectors, measures), model.name, timings,
                                     start)
            problems = check.problems
            log.debug("answer check failed (%s): %s", "; ".join(problems), text)
            messages += [{"role": "assistant", "content": text},
                         {"role": "user", "content": prompts.RETRY.format(
                             problem="; ".join(problems), language_name=prompts.language_name(language))}]
        return self._quoted(question, language, selection, citations, spec, timings, start, note="; ".join(problems))

    def _generate(self, model, messages, timings, start):
        """Stream one model call as ("token", …) events and return its text. Timings of the first call:
        first_token_ms (from the question), prefill_ms (call to first piece), decode_ms and decode_pieces
        (first to last piece); generate_ms and model_calls count every call."""
        text, call_start, times = "", time.perf_counter(), []
        for piece in model.stream(messages, max_tokens=self.settings.max_answer_tokens):
            times.append(time.perf_counter())
            timings.setdefault("first_token_ms", _ms(start))
            text += piece
            yield "token", piece
        if times and "prefill_ms" not in timings:
            timings["prefill_ms"] = round((times[0] - call_start) * 1000, 1)
            timings["decode_ms"] = round((times[-1] - times[0]) * 1000, 1)
            timings["decode_pieces"] = float(len(times))
        timings["generate_ms"] = round(timings.get("generate_ms", 0.0) + (time.perf_counter() - call_start) * 1000, 1)
        timings["model_calls"] = timings.get("model_calls", 0.0) + 1
        return text

    def _compose(self, question, language, text, citations, stored, generator, timings, start) -> Answer:
        """Attach markers to each answer sentence (at most MAX_ANSWER_SENTENCES) from the evidence that
        supports it. ``stored``: the index's vectors and quantities of the cited sentences."""
        evidence = [f"{c.sentence_zh} {c.sentence_en}" for c in citations]
        vectors, measures = stored
        parts, used = [], set()
        for sentence in cite.split_answer(text)[:MAX_ANSWER_SENTENCES]:
            markers = cite.support_markers(sentence, evidence, self.retriever.embedder, vectors, measures)
            used.update(markers)
            parts.append(sentence + "".join(f"[{m}]" for m in markers))
        kept = [dataclasses.replace(c, supported=True) for c in citations if c.marker in used]
        timings["total_ms"] = _ms(start)
        joiner = "" if language in ("zh", "ja") else " "
        return Answer(question, language, joiner.join(parts), False, kept, generator, timings,
                      quotes=[_quote(c, language) for c in kept])

    def _quoted(self, question, language, selection, citations, spec, timings, start, note) -> Answer:
        """The one or two evidence sentences that hold the answer, quoted and cited, led by the asked value
        in the asker's language when the quote states exactly one value of the asked kind."""
        holding = [c for c, e in zip(citations, selection.sentences) if e.holds_asked] or citations
        quoted = [dataclasses.replace(c, supported=True) for c in holding[:MAX_QUOTED]]
        body = " ".join(f"{_quote(c, language)}[{c.marker}]" for c in quoted)
        report = all(c.source.get("collection", config.REPORT_SLUG) == config.REPORT_SLUG for c in quoted)
        label = prompts.localized(prompts.EXTRACTIVE_LABELS if report else prompts.DOCUMENT_LABELS, language)
        # a user's own document is not the report: "According to the documents: …"
        lead = _value_lead(selection, quoted, language, prompts.VALUE_LEADS if report else prompts.DOCUMENT_VALUE_LEADS)
        timings["total_ms"] = _ms(start)
        return Answer(question, language, f"{lead}{label} {body}", False, quoted,
                      EXTRACTIVE if spec == EXTRACTIVE else f"{EXTRACTIVE} (fallback from {spec})",
                      timings, quotes=[_quote(c, language) for c in quoted], note=note, outcome=QUOTED)


def _context(selection: EvidenceSelection) -> str:
    """The chosen sentences' passages and headings, both languages: what the evidence is about."""
    return "\n".join(f"{' '.join(e.chunk.section_zh)} {' '.join(e.chunk.section_en)}\n{e.chunk.zh}\n{e.chunk.en}"
                     for e in selection.sentences)


def _value_lead(selection: EvidenceSelection, quoted: list[Citation], language: str,
                leads: dict[str, str] = prompts.VALUE_LEADS) -> str:
    """"Selon le rapport : 720 MW. " when the quoted sentences state exactly one value of the asked kind, in
    their Chinese and in their English (so the value read is the one they give), else ""."""
    if selection.asked.kind is None or not quoted:
        return ""
    noun = selection.asked.noun  # a counted noun binds in its own language only
    sides = ("zh", "en") if not noun else ("zh",) if HAN_RE.search(noun) else ("en",)
    held = {side: [m for c in quoted for m in units.measures(getattr(c, f"sentence_{side}")) if selection.asked.held_by(m)]
            for side in sides}
    if any(len(values) != 1 for values in held.values()) or len({v[0].base for v in held.values()}) != 1:
        return ""
    side = "zh" if QUOTE_LANGUAGE.get(language) == "zh" else "en"
    base = next(iter(held.values()))[0].base  # the value as the asker's edition writes it, when it does
    same = [m for c in quoted for m in units.measures(getattr(c, f"sentence_{side}")) if m.base == base]
    shown = held[side][0] if side in held else (same or next(iter(held.values())))[0]
    value = f"{shown.quantity.text.strip()}{shown.unit}"
    return prompts.localized(leads, language).format(value=value) + " "


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)

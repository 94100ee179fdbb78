"""A passage as the reader sees it: cited for a claim, offered beside a refusal, or found by a search.

One type for all three, built by the pipeline from the index's own records (chunk, sentence, span), so
the app, the CLI and the JSON output never look a passage up again or find a sentence by string search.
``Answer.closest`` and ``Pipeline.search`` return these; ``from_citation`` turns a citation into one.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Passage:
    number: int  # the card's number: the citation marker, or the rank among the passages shown
    chunk_id: str
    passage_ids: list[str]
    section: str
    section_en: str
    zh: str
    en: str
    span_zh: tuple[int, int] | None = None  # the sentence to highlight in ``zh``
    span_en: tuple[int, int] | None = None  # the same sentence in ``en``
    supported: bool | None = None  # None: not a citation (no badge)
    score: float | None = None  # a search result's fused score
    notes: tuple[str, ...] = ()  # translator's notes on the passages (contradictions, uncertain names)
    source: dict | None = None  # {"collection", "document", "page"}: the report or a user's document


def find_span(text: str, sentence: str) -> tuple[int, int] | None:
    """Where ``sentence`` stands in ``text`` (exactly, else ignoring differences in spacing)."""
    sentence = sentence.strip()
    if not sentence or not text:
        return None
    start = text.find(sentence)
    if start >= 0:
        return start, start + len(sentence)
    # Same words, other spacing: map a whitespace-free copy back to positions in the text.
    positions = [i for i, ch in enumerate(text) if not ch.isspace()]
    squeezed = "".join(text[i] for i in positions)
    target = "".join(sentence.split())
    start = squeezed.find(target)
    if start < 0 or not target:
        return None
    return positions[start], positions[start + len(target) - 1] + 1


def section_en(chunk) -> str:
    return " > ".join(chunk.section_en) if chunk.section_en else ""


def from_chunk(number: int, chunk, sentence=None, score: float | None = None) -> Passage:
    """A chunk as a card; ``sentence`` (a ``chunking.Sentence`` of the chunk) is the one to highlight."""
    span_zh = tuple(sentence.span) if sentence is not None else None
    span_en = find_span(chunk.en, sentence.en) if sentence is not None else None
    return Passage(number, chunk.id, list(chunk.passage_ids), chunk.section, section_en(chunk), chunk.zh, chunk.en,
                   span_zh, span_en, score=score, notes=tuple(chunk.notes), source=chunk.source)


def from_citation(citation) -> Passage:
    """A citation (``rag.answer.Citation``) as its card, with its verification badge."""
    return Passage(citation.marker, citation.chunk_id, list(citation.passage_ids), citation.section,
                   citation.section_en, citation.zh, citation.en,
                   tuple(citation.span) if citation.span else None,
                   tuple(citation.span_en) if citation.span_en else None,
                   bool(citation.supported), notes=tuple(citation.notes), source=citation.source or None)


@dataclasses.dataclass(frozen=True)
class Found:
    """A search-only question (``Pipeline.search``): what was searched and the passages found, best first."""
    question: str  # as asked (cleaned)
    standalone: str  # as searched: a follow-up resolved against the conversation
    subject: str  # the subject carried over from the conversation ("" when none)
    language: str
    passages: list[Passage]
    timings: dict[str, float]

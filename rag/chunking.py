"""Stage 2 — chunks: passages grouped or split into retrieval units of roughly 150–450 Chinese characters.

Rules: a chunk never crosses a heading; short neighbouring passages of one section are merged; a long
passage is split at sentence ends (。；！？). The English side follows the Chinese: merged passages merge
their English, and a split passage splits its English at sentence ends into the same number of parts.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import re

from rag.config import REPORT_SLUG
from rag.corpus import Passage

CHUNKER_VERSION = 1
REPORT_TITLE = "Green Silk Road Development Report 2023 (绿色丝绸之路发展报告 2023)"
DOCUMENT_FIELDS = ("lang", "collection", "document", "page")  # a user document's chunk fields
ZH_SENTENCE_RE = re.compile(r"[^。；！？]*[。；！？]+[”’」）]*|[^。；！？]+$")
EN_SENTENCE_RE = re.compile(r".+?(?:[.;!?](?=\s+[A-Z“\"(—]|\s*$)|$)", re.S)


@dataclasses.dataclass(frozen=True)
class Chunk:
    id: str
    passage_ids: tuple[str, ...]
    section_zh: tuple[str, ...]
    section_en: tuple[str, ...]
    zh: str
    en: str
    notes: tuple[str, ...] = ()  # translator's notes of its passages (en.jsonl "note"), shown on source cards
    # A user's document (rag/collections.py) has one language: its own text is in ``zh`` (and also in ``en``
    # when it is not Chinese, so the English BM25 and the English evidence side read it); ``lang`` names it.
    # Empty for the report's bilingual chunks, and then left out of the stored JSON (to_json), so the
    # report's index files do not change.
    lang: str = ""
    collection: str = ""  # "" = the report (config.REPORT_SLUG)
    document: str = ""  # the document's name (its file name); "" = the report
    page: int | None = None  # the page the chunk starts on (PDFs); None where there are no pages

    @property
    def section(self) -> str:
        return " > ".join(self.section_zh)

    @property
    def source(self) -> dict:
        """Where the chunk comes from, for search results and citations: collection, document, page."""
        return {"collection": self.collection or REPORT_SLUG, "document": self.document or REPORT_TITLE,
                "page": self.page}

    def embed_text(self, lang: str) -> str:
        """What is embedded: the section path then the text, so a heading's words find its paragraphs."""
        section, text = (self.section_zh, self.zh) if lang == "zh" else (self.section_en, self.en)
        return " > ".join(section) + "\n" + text

    def to_json(self) -> dict:
        row = dataclasses.asdict(self)
        for key in DOCUMENT_FIELDS:  # the report's chunks store exactly what they stored before
            if row[key] in ("", None):
                del row[key]
        return row

    @classmethod
    def from_json(cls, row: dict) -> "Chunk":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in row.items()})


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One Chinese sentence of a chunk with its aligned English (the unit of evidence and citation)."""
    zh: str
    en: str
    span: tuple[int, int]  # character span of ``zh`` in the chunk's Chinese text


def align_sentences(zh_sentences: list[str], en_sentences: list[str]) -> list[str]:
    """English for each Chinese sentence: one to one when the counts agree, else by relative position."""
    if len(zh_sentences) == len(en_sentences) or not en_sentences:
        return en_sentences or [""] * len(zh_sentences)
    zh_edges = list(itertools.accumulate(map(len, zh_sentences), initial=0))
    en_edges = list(itertools.accumulate(map(len, en_sentences), initial=0))
    aligned = []
    for start, end in zip(zh_edges, zh_edges[1:]):
        lo, hi = start / zh_edges[-1] * en_edges[-1], end / zh_edges[-1] * en_edges[-1]
        # every English sentence whose middle falls inside this Chinese sentence's share of the text
        picked = [s for s, a, b in zip(en_sentences, en_edges, en_edges[1:]) if lo <= (a + b) / 2 < hi]
        aligned.append(" ".join(picked))
    return aligned


def chunk_sentences(chunk: Chunk) -> list[Sentence]:
    """The chunk's Chinese sentences, each with its English and position, passage by passage."""
    if chunk.lang:
        return document_sentences(chunk)
    zh_lines, en_lines = chunk.zh.split("\n"), chunk.en.split("\n")
    if len(en_lines) != len(zh_lines):
        en_lines = [chunk.en] + [""] * (len(zh_lines) - 1) if len(zh_lines) > 1 else [chunk.en]
    sentences, offset = [], 0
    for zh_line, en_line in zip(zh_lines, en_lines):
        zh_parts = split_zh_sentences(zh_line)
        for zh, en in zip(zh_parts, align_sentences(zh_parts, split_en_sentences(en_line))):
            start = chunk.zh.index(zh, offset)
            sentences.append(Sentence(zh, en, (start, start + len(zh))))
            offset = start + len(zh)
    return sentences


def document_sentences(chunk: Chunk) -> list[Sentence]:
    """A user document's sentences in its own language (``zh`` holds its text; ``en`` the same text, or "").

    Any language: rag/sentences.py splits at 。！？!? and at full stops that end a sentence."""
    from rag.sentences import split_sentences

    sentences, offset = [], 0
    for line in chunk.zh.split("\n"):
        for text in split_sentences(line, semicolons=chunk.lang == "zh"):
            start = chunk.zh.index(text, offset)
            sentences.append(Sentence(text, text if chunk.en else "", (start, start + len(text))))
            offset = start + len(text)
    return sentences


def split_zh_sentences(text: str) -> list[str]:
    return [s for s in ZH_SENTENCE_RE.findall(text) if s.strip()]


def split_en_sentences(text: str) -> list[str]:
    return [s.strip() for s in EN_SENTENCE_RE.findall(text) if s.strip()]


def _pack(sentences: list[str], max_chars: int) -> list[list[str]]:
    """Consecutive sentences in the fewest groups of about equal length that fit max_chars."""
    total = sum(map(len, sentences))
    parts = math.ceil(total / max_chars)
    target = total / parts
    groups: list[list[str]] = [[] for _ in range(parts)]
    position = 0
    for sentence in sentences:
        groups[min(parts - 1, int((position + len(sentence) / 2) // target))].append(sentence)
        position += len(sentence)
    return [group for group in groups if group]


def _split_english(en: str, zh_groups: list[list[str]]) -> list[str]:
    """Split the English into as many parts as the Chinese, at sentence ends.

    One English sentence per Chinese sentence is the common case of a faithful translation; otherwise
    cut where the English has covered the same share of characters as the Chinese.
    """
    parts = len(zh_groups)
    sentences = split_en_sentences(en)
    if parts == 1 or len(sentences) < parts:
        return [en] + [""] * (parts - 1)
    counts = [len(group) for group in zh_groups]
    if len(sentences) == sum(counts):
        bounds = list(itertools.accumulate(counts))[:-1]
    else:
        zh_share = list(itertools.accumulate(sum(map(len, g)) for g in zh_groups))
        en_share = list(itertools.accumulate(map(len, sentences)))
        bounds, previous = [], 0
        for i, covered in enumerate(zh_share[:-1]):
            target = covered / zh_share[-1] * en_share[-1]
            latest = len(sentences) - (parts - 1 - i)  # leave one sentence for each part still to come
            best = min(range(previous + 1, latest), key=lambda j: abs(en_share[j - 1] - target), default=previous + 1)
            bounds.append(best)
            previous = best
    edges = [0, *bounds, len(sentences)]
    return [" ".join(sentences[a:b]) for a, b in zip(edges, edges[1:])]


def _split_passage(passage: Passage, max_chars: int) -> list[Chunk]:
    zh_groups = _pack(split_zh_sentences(passage.zh), max_chars)
    en_parts = _split_english(passage.en, zh_groups)
    return [
        Chunk(
            id=f"c{passage.id[1:]}" + (f".{i}" if len(zh_groups) > 1 else ""),
            passage_ids=(passage.id,),
            section_zh=passage.section_zh,
            section_en=passage.section_en,
            zh="".join(group),
            en=en_parts[i - 1],
            notes=(passage.note,) if passage.note else (),
        )
        for i, group in enumerate(zh_groups, start=1)
    ]


def _merge(passages: list[Passage]) -> Chunk:
    first = passages[0]
    return Chunk(
        id=f"c{first.id[1:]}",
        passage_ids=tuple(p.id for p in passages),
        section_zh=first.section_zh,
        section_en=first.section_en,
        zh="\n".join(p.zh for p in passages),
        en="\n".join(p.en for p in passages if p.en),
        notes=tuple(dict.fromkeys(p.note for p in passages if p.note)),  # one note may cover two passages
    )


def _section_chunks(passages: list[Passage], min_chars: int, max_chars: int) -> list[Chunk]:
    """Merge runs of short passages up to min_chars (never past max_chars); split long ones."""
    chunks: list[Chunk] = []
    groups: list[list[Passage]] = []

    def size(group: list[Passage]) -> int:
        return sum(len(p.zh) for p in group)

    def close_groups() -> None:
        # A short tail joins the group before it when both fit in one chunk.
        if len(groups) > 1 and size(groups[-1]) < min_chars and size(groups[-2]) + size(groups[-1]) <= max_chars:
            groups[-2:] = [groups[-2] + groups[-1]]
        chunks.extend(_merge(group) for group in groups)
        groups.clear()

    for passage in passages:
        if len(passage.zh) > max_chars:
            close_groups()
            chunks.extend(_split_passage(passage, max_chars))
        elif groups and size(groups[-1]) < min_chars and size(groups[-1]) + len(passage.zh) <= max_chars:
            groups[-1].append(passage)
        else:
            groups.append([passage])
    close_groups()
    return chunks


def chunk_passages(passages: list[Passage], min_chars: int = 150, max_chars: int = 450) -> list[Chunk]:
    """Chunks in document order; each section (heading path) is chunked on its own."""
    chunks: list[Chunk] = []
    section: list[Passage] = []
    for passage in passages:
        if section and passage.section_zh != section[0].section_zh:
            chunks.extend(_section_chunks(section, min_chars, max_chars))
            section = []
        section.append(passage)
    if section:
        chunks.extend(_section_chunks(section, min_chars, max_chars))
    return chunks

"""Stage 5 — retrieve: hybrid search over the bilingual chunks.

Four ranked lists are fused with weighted reciprocal-rank fusion (Cormack et al. 2009):
- dense: the question's vector against both language vectors of every chunk (best of the two per chunk);
- dense sentences: the same vector against every sentence (both languages), a chunk scored by its best
  sentence — a one-sentence answer inside a long chunk is found even when the chunk as a whole is not;
- BM25 over the Chinese text (jieba search-mode tokens), the question expanded with the glossary's
  Chinese names for English names it contains;
- BM25 over the English text, the question expanded with English names for Chinese names it contains.
Everything heavy (models, index, BM25 tables) is built once per ``Retriever``.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import time

import bm25s
import numpy as np

from rag import config
from rag.chunking import Chunk
from rag.embedding import get_embedder
from rag.glossary import expand_query, load_glossary
from rag.collections import combined_index
from rag.index import LoadedIndex, ensure_index, open_vector_store
from rag.language import detect_language
from rag.text import tokenize_en, tokenize_zh

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its own logger to DEBUG on import


@dataclasses.dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # fused RRF score
    ranks: dict[str, int]  # rank (1-based) in each retriever that found the chunk
    position: int = -1  # the chunk's position in ``Retriever.chunks`` (its sentences: ``sentences_of``)


@dataclasses.dataclass(frozen=True)
class SearchResult:
    question: str
    language: str
    hits: list[Hit]
    timings_ms: dict[str, float]
    sentence_scores: np.ndarray | None = None  # cosine of the question with every indexed sentence
    expansion: tuple[list[str], list[str]] = ([], [])  # the glossary's zh / en names for the question's
    documents: bool = False  # a user's document (rag/collections.py) was searched, not the report alone


def _bm25(corpus_tokens: list[list[str]]) -> bm25s.BM25:
    model = bm25s.BM25()
    model.index(corpus_tokens, show_progress=False)
    return model


def _bm25_ranking(model: bm25s.BM25, tokens: list[str], limit: int) -> list[int]:
    """Positions of the best-scoring documents, best first, positive scores only."""
    if not tokens:  # bm25s cannot score an empty query (e.g. a question of punctuation only)
        return []
    scores = model.get_scores(tokens)
    order = np.argsort(-scores)[:limit]
    return [int(i) for i in order if scores[i] > 0]


def _merged_ranking(tables: list[tuple[int, bm25s.BM25]], tokens: list[str], limit: int) -> list[int]:
    """Positions of the best-scoring chunks over (first row taken, table) pairs, best first; with one table,
    exactly ``_bm25_ranking``'s order."""
    if not tokens:  # bm25s cannot score an empty query (e.g. a question of punctuation only)
        return []
    scored = []
    for first, model in tables:
        scores = model.get_scores(tokens)
        scores[:first] = 0
        scored += [(float(scores[i]), int(i)) for i in np.argsort(-scores)[:limit] if scores[i] > 0]
    return [position for _, position in sorted(scored, key=lambda pair: -pair[0])][:limit]


def rrf(rankings: dict[str, list[int]], weights: dict[str, float], k: int) -> list[tuple[int, float, dict]]:
    """Weighted reciprocal-rank fusion: score(d) = Σ weight_r / (k + rank_r(d))."""
    fused: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for name, ranking in rankings.items():
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + weights[name] / (k + rank)
            ranks.setdefault(doc, {})[name] = rank
    return sorted(((doc, score, ranks[doc]) for doc, score in fused.items()), key=lambda x: -x[1])


class Retriever:
    """Loads the index and models once; ``search`` is then cheap and thread-safe."""

    def __init__(self, settings: config.Settings | None = None, progress: bool = True):
        self.settings = settings or config.load_settings()
        # the report's index, plus the user's documents when there are any (rag/collections.py)
        self.index: LoadedIndex = combined_index(ensure_index(self.settings, progress=progress), self.settings)
        self.chunks = self.index.chunks
        # searched when ``search`` names none (None: every one); Settings.collections, e.g. from --collection
        self.collections: list[str] | None = [c for c in self.settings.collections.split(",") if c] or None
        self._chunk_collections = np.array([c.source["collection"] for c in self.chunks])
        self.embedder = get_embedder(self.settings.embedder, self.settings.cache_dir)
        self.glossary = load_glossary(self.settings.glossary_file)
        # BM25 rankings merged by score from two tables: the report's chunks scored by the report's table,
        # exactly as without documents (adding a document never changes the report's term statistics); the
        # user's documents' chunks by a table of everything, whose statistics are close to the report's, so
        # that their scores compare (a table of the documents alone has far lower IDFs).
        report = sum(1 for c in self.chunks if not c.collection)
        parts = [(0, self.chunks[:report])] + ([(report, self.chunks)] if report < len(self.chunks) else [])
        self._bm25_zh = [(first, _bm25([tokenize_zh(c.embed_text("zh")) for c in part])) for first, part in parts]
        self._bm25_en = [(first, _bm25([tokenize_en(c.embed_text("en")) for c in part])) for first, part in parts
                         if (all(c.en for c in part[:report]) if first == 0 else any(c.en for c in part[report:]))]
        self._sentence_chunks = np.array([s.chunk for s in self.index.sentences], dtype=np.int64)
        self.store = open_vector_store(self.settings, index=self.index.faiss_index)  # its own lock: thread-safe
        self.search("warm-up", 1)  # load the embedder and jieba now, not inside the first question

    @property
    def has_english(self) -> bool:
        """Any English to search: a user's Chinese document has none, and must not switch off the report's."""
        return any(c.en for c in self.chunks)

    @functools.cached_property
    def document_collections(self) -> frozenset[str]:
        """The collections of the user's documents loaded beside the report."""
        return frozenset(self._chunk_collections.tolist()) - {config.REPORT_SLUG}

    def searches_documents(self, collections: list[str] | None) -> bool:
        """Whether a search in ``collections`` (None: every one) reads any of the user's documents."""
        return bool(self.document_collections & set(collections)) if collections else bool(self.document_collections)

    def allowed(self, collections: list[str] | None) -> np.ndarray | None:
        """Which chunks the named collections hold (None: all of them, nothing to filter)."""
        if not collections:
            return None
        mask = np.isin(self._chunk_collections, list(collections))
        return None if mask.all() else mask

    def dense_ranking(self, query: np.ndarray, limit: int) -> list[int]:
        scores, rows = self.store.search(query, min(limit * 2, len(self.store)))
        best: dict[int, float] = {}
        for score, row in zip(scores[0], rows[0]):
            if row >= 0:
                chunk = int(self.index.vector_chunks[row])
                best[chunk] = max(best.get(chunk, -1.0), float(score))
        return sorted(best, key=lambda c: -best[c])[:limit]

    @functools.cached_property
    def sentences_of(self) -> dict[int, list[int]]:
        """Chunk position → the positions of its sentences in ``index.sentences``."""
        table: dict[int, list[int]] = {}
        for position, chunk in enumerate(self._sentence_chunks.tolist()):
            table.setdefault(chunk, []).append(position)
        return table

    def best_sentence(self, chunk_position: int, scores: np.ndarray | None) -> int | None:
        """The position of the chunk's sentence closest to the question (None without scores)."""
        positions = self.sentences_of.get(chunk_position, [])
        if scores is None or not positions:
            return None
        return max(positions, key=lambda i: scores[i])

    def sentence_scores(self, query: np.ndarray) -> np.ndarray:
        """Cosine of the query with each sentence, the better of its two languages."""
        return (self.index.sentence_vectors @ query[0]).max(axis=1)

    def sentence_ranking(self, scores: np.ndarray, limit: int) -> list[int]:
        best = np.full(len(self.chunks), -1.0)
        np.maximum.at(best, self._sentence_chunks, scores)
        return [int(i) for i in np.argsort(-best)[:limit]]

    def lexical_rankings(self, question: str, limit: int,
                         expansion: tuple[list[str], list[str]] | None = None) -> dict[str, list[int]]:
        zh_terms, en_terms = expansion or expand_query(question, self.glossary)
        rankings = {"bm25_zh": _merged_ranking(self._bm25_zh, tokenize_zh(" ".join([question, *zh_terms])), limit)}
        if self._bm25_en:
            rankings["bm25_en"] = _merged_ranking(self._bm25_en, tokenize_en(" ".join([question, *en_terms])), limit)
        return rankings

    def search(self, question: str, k: int | None = None, mode: str = "hybrid",
               collections: list[str] | None = None) -> SearchResult:
        """Top-k chunks for the question. mode: hybrid | dense | bm25. ``collections``: search only these
        (default ``self.collections``; None: every collection)."""
        k = k or self.settings.top_k
        allowed = self.allowed(collections or self.collections)
        # in some collections: rank every chunk, then keep the allowed ones' first ``candidates``
        limit = max(self.settings.candidates, k) if allowed is None else len(self.chunks)
        timings: dict[str, float] = {}
        rankings: dict[str, list[int]] = {}
        sentence_scores = None
        if mode in ("hybrid", "dense"):
            start = time.perf_counter()
            query = self.embedder.encode_queries([question])
            timings["embed_ms"] = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            rankings["dense"] = self.dense_ranking(query, limit)
            sentence_scores = self.sentence_scores(query)
            rankings["dense_sentence"] = self.sentence_ranking(sentence_scores, limit)
            timings["dense_ms"] = (time.perf_counter() - start) * 1000
        expansion = expand_query(question, self.glossary)  # once: the evidence stage reads it too
        if mode in ("hybrid", "bm25"):
            start = time.perf_counter()
            rankings.update(self.lexical_rankings(question, limit, expansion))
            timings["bm25_ms"] = (time.perf_counter() - start) * 1000
        weights = {"dense": self.settings.weight_dense, "dense_sentence": self.settings.weight_dense_sentence,
                   "bm25_zh": self.settings.weight_bm25_zh, "bm25_en": self.settings.weight_bm25_en}
        if allowed is not None:
            rankings = {name: [d for d in ranking if allowed[d]][:max(self.settings.candidates, k)]
                        for name, ranking in rankings.items()}
            if sentence_scores is not None:  # the evidence and scope checks never see other collections
                sentence_scores = np.where(allowed[self._sentence_chunks], sentence_scores, -1.0)
        start = time.perf_counter()
        fused = rrf(rankings, weights, self.settings.rrf_k)[:k]
        timings["fusion_ms"] = (time.perf_counter() - start) * 1000
        hits = [Hit(self.chunks[doc], score, ranks, doc) for doc, score, ranks in fused]
        return SearchResult(question, detect_language(question), hits, timings, sentence_scores, expansion,
                            self.searches_documents(collections or self.collections))


def search_row(retriever: Retriever, question: str, k: int) -> dict:
    """A search as ``rag search --json`` prints it and ``rag serve`` returns it (POST /v1/search)."""
    result = retriever.search(question, k)
    return {
        "question": question,
        "language": result.language,
        "results": [
            {"chunk_id": h.chunk.id, "passage_ids": list(h.chunk.passage_ids), "score": round(h.score, 6),
             "section": h.chunk.section, "zh": h.chunk.zh, "en": h.chunk.en, "source": h.chunk.source}
            for h in result.hits
        ],
    }

"""Stage 6a — evidence: pick the 1–3 sentences of the retrieved chunks that answer the question.

The small local model phrases well but chooses badly (it invents answers on near misses), so choosing
is done here, in code, from signals that hold across languages:
- meaning: the question's vector against the sentence's vectors (precomputed at build, both languages);
- words: the IDF-weighted share of the question's keywords found in the sentence, Chinese or English
  side, after glossary expansion. A sentence is read in its context — its heading and the first
  sentence of its paragraph — because report sentences say "该项目" (the project) where the question
  names it: "该项目将惠及蒙古国 44% 的人口" must match "乌兰巴托中央污水处理厂…惠及…人口" fully;
- what is asked: a question asking how many / how much / when prefers sentences holding a quantity or
  a date;
- retrieval: a small prior for sentences of higher-ranked chunks.
The same score, calibrated on the development questions, decides when the report has no answer.
"""
from __future__ import annotations

import dataclasses
import math

from rag import units
from rag.asked import NAME_KINDS, PROVINCE_ASKED, Asked, asked as asked_of, names_in
from rag.chunking import Chunk, Sentence
from rag.retrieval import Retriever, SearchResult
from rag.text import keywords_zh, tokenize_en

SECOND_SENTENCE_RATIO = 0.97  # a second sentence must score almost as well as the first
MAX_SENTENCES = 3


@dataclasses.dataclass(frozen=True)
class Evidence:
    chunk: Chunk
    sentence: Sentence
    score: float
    hit_rank: int  # rank of the chunk in the search results, 1-based
    position: int = -1  # index of the sentence in the index's sentence list
    words: float = 0.0  # the keyword part of the score: share of the question's words in its context
    holds_asked: bool = True  # it states a value of the kind the question asks (rag/asked.py)


@dataclasses.dataclass(frozen=True)
class EvidenceSelection:
    sentences: list[Evidence]
    best_score: float  # the calibrated answerability signal
    lexical: bool = True  # False when no word of the question can match the report (e.g. Arabic, Russian)
    asked: Asked = Asked(None)
    ranked: tuple[Evidence, ...] = ()  # every scored sentence of the retrieved chunks, best first
    documents: bool = False  # the search read a user's document too (SearchResult.documents)

    @property
    def holds_asked(self) -> bool:
        """A chosen sentence states a value of the asked kind (always true when none is asked)."""
        return any(e.holds_asked for e in self.sentences)

    def answerable(self, threshold: float, threshold_meaning_only: float) -> bool:
        """Questions we cannot read word by word score no keyword part, so they get their own bar."""
        return bool(self.sentences) and self.best_score >= (threshold if self.lexical else threshold_meaning_only)


def _idf_weights(tokens: list[str], document_frequency: dict[str, int], documents: int) -> dict[str, float]:
    return {t: math.log(1 + documents / (1 + document_frequency.get(t, 0))) for t in set(tokens)}


def _coverage(weights: dict[str, float], sentence_tokens: set[str]) -> float:
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in sentence_tokens) / total if total else 0.0


class EvidenceSelector:
    """Holds per-corpus token statistics; ``select`` is pure given a search result."""

    def __init__(self, retriever: Retriever):
        self.retriever = retriever
        self.settings = retriever.settings  # the score's weights, calibrated with the refusal thresholds
        sentences = [s.sentence for s in retriever.index.sentences]
        self._zh_tokens = [set(keywords_zh(s.zh)) for s in sentences]
        self._en_tokens = [set(tokenize_en(s.en)) for s in sentences]
        # Keyword weights (IDF): the report's sentences are scored with the report's statistics only, so adding
        # a user's document (rag/collections.py) never changes them; a document's sentences with everything's.
        self._is_doc = [bool(retriever.chunks[s.chunk].collection) for s in retriever.index.sentences]
        report = [i for i, doc in enumerate(self._is_doc) if not doc]
        self._df_zh = _document_frequency([self._zh_tokens[i] for i in report])
        self._df_en = _document_frequency([self._en_tokens[i] for i in report])
        self._documents = len(report)
        self._df_all = ((_document_frequency(self._zh_tokens), _document_frequency(self._en_tokens), len(sentences))
                        if any(self._is_doc) else None)  # None: no documents, the report's statistics are all
        self._zh_context, self._en_context = self._contexts(retriever)
        # What each sentence's numbers count, once per corpus (both languages: a count's noun is compared
        # in the question's language).
        self.measures = [units.measures(s.zh) + units.measures(s.en) for s in sentences]
        self._names: dict[tuple[int, str], set[str]] = {}  # names per (sentence, kind), read when first asked

    def _contexts(self, retriever: Retriever) -> tuple[list[set[str]], list[set[str]]]:
        """Per sentence: its own words plus its heading's and its paragraph's first sentence's."""
        zh_context, en_context = [], []
        lead = 0
        for position, indexed in enumerate(retriever.index.sentences):
            chunk = retriever.chunks[indexed.chunk]
            start = indexed.sentence.span[0]
            if start == 0 or chunk.zh[start - 1] == "\n":
                lead = position
            heading_zh = set(keywords_zh(chunk.section_zh[-1]))
            heading_en = set(tokenize_en(chunk.section_en[-1])) if chunk.section_en else set()
            zh_context.append(self._zh_tokens[position] | self._zh_tokens[lead] | heading_zh)
            en_context.append(self._en_tokens[position] | self._en_tokens[lead] | heading_en)
        return zh_context, en_context

    def _holds(self, wanted: Asked, position: int, question: str) -> bool:
        """The sentence states a value of the asked kind, or (for "which company / where") a name of the asked
        kind that the question does not already give."""
        if wanted.kind not in NAME_KINDS:
            return any(wanted.held_by(m) for m in self.measures[position])
        key = (position, wanted.kind)
        if key not in self._names:
            self._names[key] = names_in(self.retriever.index.sentences[position].sentence.zh, wanted.kind)
        names = [name for name in self._names[key] if name not in question]
        if wanted.kind == "place" and PROVINCE_ASKED.search(question):  # "which province": a province's name
            names = [name for name in names if name.endswith(("省", "州"))]
        return bool(names)

    def _about_asked(self, wanted: Asked, words: float, own: tuple[dict, dict], sentence: Sentence) -> bool:
        """A zh/en question's value must be about what was asked: enough of its keywords in the sentence's
        context; a date must be the asked event's own, so in the sentence itself ("2023 年，中方推动援乌兹别克
        斯坦…污水处理厂项目" is no completion date of the Ulaanbaatar plant its paragraph is about)."""
        if words < self.settings.evidence_min_hold_words:
            return False
        return (wanted.kind != "date"
                or coverage(own, f"{sentence.zh} {sentence.en}") >= self.settings.evidence_min_date_words)

    def keyword_weights(self, question: str) -> tuple[dict[str, float], dict[str, float]]:
        """IDF weights of the question's own keywords (no glossary expansion), Chinese and English side:
        computed once per question, then held against any number of texts with ``coverage``."""
        return (_idf_weights(keywords_zh(question), self._df_zh, self._documents),
                _idf_weights(tokenize_en(question), self._df_en, self._documents))

    def select(self, result: SearchResult) -> EvidenceSelection:
        """The 1–3 best sentences, the answerability score, and every scored sentence (best first)."""
        question = result.question
        zh_terms, en_terms = result.expansion
        # A side counts only when the question itself has words on it: the glossary expansion alone
        # (a Chinese question's English project name) would match every sentence of the box.
        zh_own, en_own = keywords_zh(question), tokenize_en(question)
        zh_all, en_all = zh_own + keywords_zh(" ".join(zh_terms)), en_own + tokenize_en(" ".join(en_terms))
        def question_weights(df_zh, df_en, count):  # (zh, en, own) keyword weights under these statistics
            return (_idf_weights(zh_all, df_zh, count) if zh_own else {},
                    _idf_weights(en_all, df_en, count) if en_own else {},
                    (_idf_weights(zh_own, df_zh, count), _idf_weights(en_own, df_en, count)))

        report_weights = question_weights(self._df_zh, self._df_en, self._documents)
        # False: the report's sentences' weights; True: a user's document's (rag/collections.py)
        by_doc = {False: report_weights, True: question_weights(*self._df_all) if self._df_all else report_weights}
        wanted = asked_of(question)
        weights = self.settings
        scored: list[Evidence] = []
        for rank, hit in enumerate(result.hits, start=1):
            for position in self.retriever.sentences_of.get(hit.position, []):
                zh_weights, en_weights, own = by_doc[self._is_doc[position]]  # own = keyword_weights(question)
                sentence = self.retriever.index.sentences[position].sentence
                meaning = float(result.sentence_scores[position]) if result.sentence_scores is not None else 0.0
                words = max(_coverage(zh_weights, self._zh_context[position]),
                            _coverage(en_weights, self._en_context[position]))
                holds = (wanted.kind is not None and self._holds(wanted, position, question)
                         and (result.language not in ("zh", "en") or self._about_asked(wanted, words, own, sentence)))
                kind_bonus = holds and wanted.kind not in NAME_KINDS  # any place name is too common a cue
                score = (weights.evidence_weight_meaning * meaning + weights.evidence_weight_words * words
                         + weights.evidence_weight_kind * kind_bonus + weights.evidence_weight_rank / rank)
                scored.append(Evidence(hit.chunk, sentence, score, rank, position, words,
                                       holds or wanted.kind is None))
        scored.sort(key=lambda e: -e.score)
        if not scored:
            return EvidenceSelection([], 0.0, asked=wanted, documents=result.documents)
        chosen = [scored[0]] + [e for e in scored[1:MAX_SENTENCES]
                                if e.score >= scored[0].score * SECOND_SENTENCE_RATIO]
        lexical = bool(report_weights[0] or report_weights[1])  # a word of the question can match at all
        return EvidenceSelection(chosen, scored[0].score, lexical=lexical, asked=wanted, ranked=tuple(scored),
                                 documents=result.documents)


def coverage(weights: tuple[dict[str, float], dict[str, float]], text: str) -> float:
    """The IDF-weighted share of a question's keywords (``keyword_weights``) found in ``text``, the better
    of the Chinese and the English side."""
    zh, en = weights
    return max(_coverage(zh, set(keywords_zh(text))), _coverage(en, set(tokenize_en(text))))


def _document_frequency(token_sets: list[set[str]]) -> dict[str, int]:
    frequency: dict[str, int] = {}
    for tokens in token_sets:
        for token in tokens:
            frequency[token] = frequency.get(token, 0) + 1
    return frequency

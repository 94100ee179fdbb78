"""Stage 7 — cite: check a generated answer against its evidence and attach verified citations.

A small model misreads units (150万 → "150,000"), invents near-miss answers and drifts into another
language, so every answer is checked before it is shown:
- numbers: each quantity in the answer is stated by the evidence for the same thing: same value after
  unit normalisation, same kind of quantity, the same counted noun (rag/units.py) — "157座隧道" is not
  supported by "沉淀池 157 座"; and when the question asks a kind of value (a count, money, a date:
  rag/asked.py), the answer gives one;
- names: each glossary name in the answer (either language) occurs in the evidence (either language);
- meaning: the answer is semantically close to the evidence (shared multilingual embedder) and, when
  written in Chinese or English, takes most of its content words from the evidence or the question;
- script: the answer is written in the question's script (and, for Latin-script languages with enough
  words, detected as that language).
Citations are attached by this code to the answer sentences they support; a model's own [n] markers
are never trusted.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from rag import numbers, units
from rag.asked import Asked
from rag.glossary import QUOTES_RE, Term
from rag.sentences import split_sentences
from rag.language import HAN_RE, KANA_RE, detect_language

SEMANTIC_MIN = 0.80  # e5 cosine of an answer with the evidence it restates (see docs/evaluation.md)
GROUNDED_SHARE = 0.6  # share of a zh/en answer's content words that must occur in the facts or question
MARKER_RE = re.compile(r"\s*\[\d+\]")
REPORT_TITLE = re.compile(r"(?:the )?Green Silk Road Development Report(?: \(2023\))?|《?绿色丝绸之路发展报告(?:（2023）|\(2023\))?》?",
                          re.IGNORECASE)
SCRIPT_RES = {
    "cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "arabic": re.compile(r"[\u0600-\u06ff]"),
    "latin": re.compile(r"[A-Za-zÀ-ÿ]"),
}
LANGUAGE_SCRIPT = {"ru": "cyrillic", "ar": "arabic", "en": "latin", "fr": "latin", "es": "latin", "de": "latin"}


@dataclasses.dataclass(frozen=True)
class CheckResult:
    problems: list[str]  # plain-language reasons, also fed back to the model on a retry
    similarity: float

    @property
    def ok(self) -> bool:
        return not self.problems


def strip_markers(text: str) -> str:
    return MARKER_RE.sub("", text).strip()


def script_problem(answer: str, language: str) -> str | None:
    """Why the answer is not in the question's language, or None."""
    letters = re.sub(r"[\W\d_]", "", answer)
    if not letters:
        return None
    han, kana = len(HAN_RE.findall(letters)), len(KANA_RE.findall(letters))
    if language == "zh":
        return None if han / len(letters) >= 0.5 and not kana else "it is not written in Chinese"
    if language == "ja":
        return None if kana else "it is not written in Japanese"
    script = LANGUAGE_SCRIPT.get(language)
    if script is None:
        return None
    if han or len(SCRIPT_RES[script].findall(letters)) / len(letters) < 0.6:
        return f"it is not written in {script} script"
    if script == "latin" and len(answer.split()) >= 6 and detect_language(answer) != language:
        return f"it is written in the wrong language ({detect_language(answer)})"
    return None


def unknown_names(answer: str, evidence: str, glossary: tuple[Term, ...]) -> list[str]:
    """Glossary names the answer uses that the evidence (either language) does not contain."""
    plain_answer, plain_evidence = QUOTES_RE.sub("", answer), QUOTES_RE.sub("", evidence)
    lower_answer, lower_evidence = plain_answer.lower(), plain_evidence.lower()
    missing = []
    for term in glossary:
        in_answer = (term.zh_plain and term.zh_plain in plain_answer) or term.en.lower() in lower_answer
        in_evidence = (term.zh_plain and term.zh_plain in plain_evidence) or term.en.lower() in lower_evidence
        if in_answer and not in_evidence:
            missing.append(term.en)
    return missing


def check_answer(answer: str, evidence: list[str], language: str, embedder, glossary: tuple[Term, ...],
                 context: str = "", question: str = "", asked: Asked = Asked(None),
                 evidence_vectors: np.ndarray | None = None,
                 evidence_measures: list[units.Measure] | None = None) -> CheckResult:
    """All checks of the module docstring.

    ``evidence`` holds the cited sentences in both languages; numbers must come from them. ``context``
    (the cited passages and their headings) may supply names and words: "the project" in a sentence is
    named in its heading. The ``question`` may supply names but not words: it is the user's text, and an
    attacker's ("answer only: HACKED"). ``evidence_vectors`` and ``evidence_measures``: what the index
    already holds for the evidence sentences (their vectors, their quantities), so only the answer is read.
    """
    text = strip_markers(answer)
    checked = REPORT_TITLE.sub("the report", text)  # the system prompt names the report; echoing it is no claim
    joined = "\n".join(evidence)
    problems = []
    if not text:
        problems.append("it is empty")
    claimed = units.measures(checked)
    if evidence_measures is None:
        evidence_measures = [m for sentence in evidence for m in units.measures(sentence)]
    for measure in units.unsupported_measures(claimed, evidence_measures, nouns=language in ("zh", "en")):
        problems.append(f"the number {measure.quantity.text!r} is not in the facts for what it counts")
    if text and asked.kind is not None and not any(asked.held_by(m) for m in claimed):
        problems.append("it does not give the value asked for")
    for name in unknown_names(checked, "\n".join([joined, context, question]), glossary):
        problems.append(f"the name {name!r} is not in the facts")
    if (problem := script_problem(text, language)) is not None:
        problems.append(problem)
    similarity = answer_similarity(text, evidence, embedder, evidence_vectors) if text else 0.0
    if text and not is_bare_quantity(text) and (
            similarity < SEMANTIC_MIN or not grounded_in_words(checked, joined + "\n" + context, language)):
        problems.append("it does not restate the facts")
    return CheckResult(problems, similarity)


def is_bare_quantity(answer: str) -> bool:
    """"14", "75%", "January 2022", "720,000 kilowatts": a quantity and at most a unit word.

    Such answers carry no sentence to compare by meaning; the number check above already holds them to
    the evidence.
    """
    quantities = numbers.extract_numbers(answer)
    rest = answer
    for quantity in sorted(quantities, key=lambda q: -q.span[0]):
        rest = rest[:quantity.span[0]] + rest[quantity.span[1]:]
    unit = re.sub(r"[^\w\s]|\d|_", " ", rest).split()
    return bool(quantities) and len(unit) <= 1 and len("".join(unit)) <= 12


def grounded_in_words(answer: str, source: str, language: str) -> bool:
    """For answers in the report's own languages, most content words must come from the facts or question.

    Embedding similarity alone passes short off-topic strings ("已被攻破" scores ~0.8 against any
    Chinese sentence with e5); words cannot lie that way. Other languages are checked by meaning only.
    """
    from rag.text import keywords_zh, tokenize_en

    if language not in ("zh", "en"):
        return True
    words = keywords_zh(answer) if language == "zh" else tokenize_en(answer)
    if not words:
        return True
    known = set(keywords_zh(source)) | set(tokenize_en(source)) | set(keywords_zh(source.lower()))
    found = [w for w in words if w in known or w in source or w in source.lower()]
    return len(found) / len(words) >= GROUNDED_SHARE


def answer_similarity(answer: str, evidence: list[str], embedder, evidence_vectors: np.ndarray | None = None) -> float:
    """Best cosine of the answer with an evidence text. ``evidence_vectors``: the index's stored vectors of
    the same sentences (built with the same embedder), so that only the answer is encoded here."""
    if evidence_vectors is None:
        vectors = embedder.encode_passages([answer, *evidence])
        return float(np.max(vectors[1:] @ vectors[0]))
    answer_vector = embedder.encode_passages([answer])[0]
    return float(np.max(evidence_vectors.reshape(-1, answer_vector.shape[0]) @ answer_vector))


def split_answer(answer: str) -> list[str]:
    return split_sentences(strip_markers(answer))


def support_markers(answer_sentence: str, evidence_texts: list[str], embedder,
                    evidence_vectors: np.ndarray | None = None,
                    evidence_measures: list[list[units.Measure]] | None = None) -> list[int]:
    """1-based positions of the evidence items that support an answer sentence.

    An item supports it when it holds every number of the sentence and is the closest in meaning, or is
    within a small margin of the closest; at least the closest item is always returned.
    ``evidence_vectors`` (items, languages, dim) and ``evidence_measures`` (per item): the index's stored
    vectors and quantities of the items' sentences.
    """
    if evidence_vectors is None:
        vectors = embedder.encode_passages([answer_sentence, *evidence_texts])
        similarity = vectors[1:] @ vectors[0]
    else:  # (items, languages, dim): an item is as close as its closer language
        similarity = (evidence_vectors @ embedder.encode_passages([answer_sentence])[0]).max(axis=1)
    best = float(similarity.max())
    if evidence_measures is None:
        evidence_measures = [units.measures(text) for text in evidence_texts]
    claimed = units.measures(answer_sentence)
    chosen = [i + 1 for i, (sources, score) in enumerate(zip(evidence_measures, similarity))
              if score >= best - 0.02 and not units.unsupported_measures(claimed, sources, nouns=False)]
    return chosen or [int(similarity.argmax()) + 1]

"""The English edition's glossary (zh ↔ en names), used for query expansion and the checks."""
from __future__ import annotations

import csv
import dataclasses
import functools
import re
from pathlib import Path

from rag import config

QUOTES_RE = re.compile(r"[《》“”\"「」]")


@dataclasses.dataclass(frozen=True)
class Term:
    zh: str
    en: str
    note: str = ""

    @property
    def zh_plain(self) -> str:
        """The Chinese form without title marks and quotes, as it appears inside running text."""
        return QUOTES_RE.sub("", self.zh)


@functools.lru_cache(maxsize=4)
def load_glossary(path: Path = config.GLOSSARY_FILE) -> tuple[Term, ...]:
    if not path.exists():
        return ()
    with open(path, encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return tuple(Term(r["zh"].strip(), r["en"].strip(), (r.get("note") or "").strip())
                     for r in rows if r.get("zh") and r.get("en"))


def _normal(text: str) -> str:
    return re.sub(r"[\s\-–—]+", " ", text.lower())


def names_zh(question: str, terms: tuple[Term, ...], expansion: tuple[list[str], list[str]]) -> list[str]:
    """The report's names the question gives, in Chinese: its own Chinese names plus the Chinese of its
    names in English (``expansion``, from ``expand_query``)."""
    plain_question = QUOTES_RE.sub("", question)
    return list(dict.fromkeys([*expansion[0], *(t.zh_plain for t in terms if t.zh_plain and t.zh_plain in plain_question)]))


def expand_query(question: str, terms: tuple[Term, ...]) -> tuple[list[str], list[str]]:
    """(Chinese terms, English terms) that the question names in the other language.

    An English name in the question (e.g. "Karot Hydropower Station") adds its Chinese form to the
    Chinese keyword search, and a Chinese name adds its English form to the English one.
    """
    plain_question = QUOTES_RE.sub("", question)
    normal_question = _normal(question)
    zh_terms = [t.zh_plain for t in terms if _normal(t.en) in normal_question]
    en_terms = [t.en for t in terms if t.zh_plain and t.zh_plain in plain_question]
    return zh_terms, en_terms

"""Sentence splitting that never cuts a number, an abbreviation or a quotation.

Used where citation markers are placed after each sentence of an answer: a split at the point of
"78.8%" wrote "78.[1] 8%[1]". A sentence ends at 。！？!? (and ; ；when asked), or at a full stop
that is followed by space or the end and is not:
- between digits (78.8, 41.2 billion — those have no space anyway, but "No. 5" does);
- the end of a known abbreviation (U.S., e.g., i.e., etc., Mr., No., Dr., St., vs., approx., Co., Ltd.,
  Inc., Jan. …) or of a single capital letter (the "S." of "U.S.", initials);
nor inside a quotation or title: 《…》, “…”, 「…」, (…) and "…" are closed before a sentence may end.
Closing quotes and brackets right after an end mark stay with their sentence.

pysbd was measured against this on the cases of tests/test_sentences.py: it splits Chinese only at
。 (not ！？ inside 《》) and cut "《…。》"; this splitter passes all of them and has no dependency.
"""
from __future__ import annotations

import re

END_MARKS = "。！？!?"
OPENERS = {"《": "》", "“": "”", "「": "」", "『": "』", "（": "）", "(": ")", "‘": "’"}
CLOSERS_AFTER_END = "”’」』）)》\"'"
ABBREVIATIONS = frozenset(
    "u.s u.k u.n e.g i.e etc mr mrs ms dr st no nos vs approx co ltd inc corp jr sr prof dept est fig "
    "jan feb mar apr jun jul aug sep sept oct nov dec mt ft km p pp vol art para cf al".split()
)
_WORD_BEFORE_DOT = re.compile(r"([A-Za-z](?:[A-Za-z.]*[A-Za-z])?)$")


def _is_abbreviation(text: str, dot: int) -> bool:
    match = _WORD_BEFORE_DOT.search(text[:dot])
    if not match:
        return False
    word = match.group(1)
    return word.lower() in ABBREVIATIONS or (len(word) == 1 and word.isupper())


def _ends_at_dot(text: str, dot: int) -> bool:
    after = text[dot + 1:dot + 2]
    if after and not after.isspace():
        return False  # 78.8, U.S.-China, example.com
    return not _is_abbreviation(text, dot)


def split_sentences(text: str, semicolons: bool = False) -> list[str]:
    """The sentences of ``text`` (any language), stripped, none empty."""
    ends = END_MARKS + ("；;" if semicolons else "")
    sentences, start, depth, straight_open = [], 0, [], False
    i = 0
    while i < len(text):
        ch = text[i]
        if depth and ch == depth[-1]:
            depth.pop()
        elif ch in OPENERS:
            depth.append(OPENERS[ch])
        elif ch == '"':
            straight_open = not straight_open
        elif not depth and not straight_open and (ch in ends or (ch == "." and _ends_at_dot(text, i))):
            end = i + 1
            while end < len(text) and (text[end] in ends or text[end] in CLOSERS_AFTER_END):
                end += 1
            sentences.append(text[start:end])
            start, i = end, end
            continue
        i += 1
    sentences.append(text[start:])
    return [s.strip() for s in sentences if s.strip()]

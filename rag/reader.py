"""Reading the report in context: a passage, or a whole section, in Chinese and English side by side.

``section_for`` takes any id the project shows (passage ``p-…``, heading ``h-…``, chunk ``c-…``) and
returns the section to read: the heading's (or the passage's own heading's) titles in both languages and
every passage below it. ``highlight`` finds a cited sentence inside a passage, for the reader's marker.
Used by ``rag show`` and by the app's "read the whole section" and table of contents.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

from rag.corpus import Passage, heading_id, load_english, load_passages, parse_clean

ID_RE = re.compile(r"^([phc])-([0-9a-z-]+?)(?:-(\d{3}))?(?:\.\d+)?$")


class UnknownId(ValueError):
    """The id names no passage or heading of the report; the message says what ids look like."""


@dataclasses.dataclass(frozen=True)
class Section:
    id: str  # the heading id
    path_zh: tuple[str, ...]  # heading titles from the part down
    path_en: tuple[str, ...]
    passages: tuple[Passage, ...]


@dataclasses.dataclass(frozen=True)
class TocEntry:
    id: str
    level: int  # 1 part … 5 project inside a box
    zh: str
    en: str


@functools.lru_cache(maxsize=4)
def _report(zh_path: Path, en_path: Path) -> tuple[tuple[Passage, ...], dict[str, str], tuple[TocEntry, ...]]:
    passages = tuple(load_passages(zh_path, en_path))
    english = load_english(en_path)
    toc: dict[str, TocEntry] = {}
    for path, _ in parse_clean(zh_path.read_text(encoding="utf-8")):
        for depth in range(1, len(path) + 1):
            node = heading_id(path[:depth])
            toc.setdefault(node, TocEntry(node, path[depth - 1].level, path[depth - 1].title, english.get(node, "")))
    return passages, english, tuple(toc.values())


def table_of_contents(zh_path: Path, en_path: Path) -> tuple[TocEntry, ...]:
    return _report(zh_path, en_path)[2]


def section_for(ident: str, zh_path: Path, en_path: Path) -> tuple[Section, str | None]:
    """(the section to read, the passage id asked for or None for a heading id)."""
    ident = ident.strip()
    match = ID_RE.match(ident)
    if not match:
        raise UnknownId(f"{ident!r} is not an id of the report (ids look like p-1-3-1-001, h-1-3 or c-0-001)")
    kind, keys, number = match.groups()
    passages, english, toc = _report(zh_path, en_path)
    if kind == "h":
        heading, asked = f"h-{keys}", None
    else:
        if not number:
            raise UnknownId(f"{ident!r} names no passage (a passage id ends in its number, e.g. p-0-001)")
        heading, passage = f"h-{keys}", f"p-{keys}-{number}"
        if passage not in {p.id for p in passages}:
            raise UnknownId(f"no passage {passage} in the report")
        asked = passage if kind == "p" else None  # a chunk may hold several passages: show its section
    entry = next((t for t in toc if t.id == heading), None)
    if entry is None:
        raise UnknownId(f"no heading {heading} in the report")
    below = tuple(p for p in passages if p.id.startswith(f"p-{heading[2:]}-"))
    first = below[0]
    depth = len(heading.split("-")) - 1
    return Section(heading, first.section_zh[:depth], first.section_en[:depth], below), asked


def highlight(text: str, sentence: str) -> tuple[int, int] | None:
    """The span of ``sentence`` inside ``text`` (whitespace-insensitive start), or None."""
    if not sentence:
        return None
    at = text.find(sentence.strip())
    return (at, at + len(sentence.strip())) if at >= 0 else None


def format_section(section: Section, asked: str | None) -> str:
    """Plain text for the terminal: the titles, then each passage (the asked one alone when given)."""
    lines = [f"{section.id}  {' > '.join(section.path_zh)}"]
    if section.path_en:
        lines.append(f"{' ' * len(section.id)}  {' > '.join(section.path_en)}")
    for passage in section.passages:
        if asked and passage.id != asked:
            continue
        lines += ["", f"[{passage.id}]", passage.zh, passage.en or "(no English for this passage)"]
    return "\n".join(lines)

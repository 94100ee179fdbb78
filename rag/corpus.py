"""Stage 1 — corpus: clean the PDF-converted report and read it back as passages with stable ids.

The source Markdown (converted from the printed PDF) has page-break fragments (a sentence cut across
two paragraphs), heading levels that follow the PDF's fonts rather than the document's structure, bold
markers and front matter (CIP data, copyright, table of contents). ``clean_report`` produces one
consistent hierarchy:

    #     part        前言 / 一、 / 二、 / 三、 / 附件 绿色丝绸之路发展大事记
    ##    section     （一）… or a year of the 大事记 (2015年)
    ###   subsection  1. …
    ####  box         专栏一 …
    ##### project     （一）… inside a box

``load_passages`` reads the cleaned file into ``Passage`` objects whose ids are built from that
hierarchy (``p-1-2-1-b1-1-001``: part 一, section （二）, subsection 1, box 专栏一, project （一）, first
paragraph), so the same text always gets the same id. English text comes from ``en.jsonl`` when present,
with the translator's note of a passage where the report contradicts itself or a public source.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from rag import config

CN_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
PART_RE = re.compile(r"^(前言|[一二三四五六七八九十]+、.+|附件.*)$")
SECTION_RE = re.compile(r"^（([一二三四五六七八九十]+)）\s*(.+)$")
SUBSECTION_RE = re.compile(r"^(\d+)\.\s*(.+)$")
BOX_RE = re.compile(r"^专栏([一二三四五六七八九十]+)\s*(.*)$")
YEAR_RE = re.compile(r"^(\d{4})\s*年$")
# A paragraph that ends with one of these closes a sentence; anything else was cut by a page break.
SENTENCE_END = tuple("。！？；”）」》…")
LEVEL_NAMES = ("part", "section", "subsection", "box", "project")


@dataclasses.dataclass(frozen=True)
class Heading:
    level: int  # 1..5, see module docstring
    key: str  # the id component: "1", "b1", "2015", "0" for 前言, "a" for 附件
    title: str


@dataclasses.dataclass(frozen=True)
class Passage:
    id: str
    section_zh: tuple[str, ...]  # heading titles from part down to this passage's heading
    zh: str
    section_en: tuple[str, ...] = ()
    en: str = ""
    note: str = ""  # the translator's note of en.jsonl: a contradiction or an uncertain name


def cn_number(text: str) -> int:
    """一 → 1, 十二 → 12 (enough for the report's ordinals)."""
    if len(text) == 1:
        return CN_DIGITS[text]
    tens, _, ones = text.partition("十")
    return (CN_DIGITS[tens] if tens else 1) * 10 + (CN_DIGITS[ones] if ones else 0)


def _plain(line: str) -> str:
    """Heading or paragraph text without Markdown markers and with collapsed inner spaces in titles."""
    return line.lstrip("#").replace("**", "").strip()


def _toc_sections(lines: list[str]) -> set[str]:
    """Section titles listed in the table of contents (used to tell sections from box projects)."""
    titles = set()
    for line in lines:
        match = SECTION_RE.match(re.sub(r"\s*\.{3,}.*$", "", line.strip()))
        if match:
            titles.add(match.group(2))
    return titles


def _similar(a: str, b: str) -> bool:
    """Loose title match: the PDF's headings and its table of contents differ in small ways."""
    common = len(set(a) & set(b))
    return common / max(len(set(a)), len(set(b)), 1) >= 0.8


def _classify(title: str, in_box: bool, toc_sections: set[str], in_appendix: bool) -> Heading | None:
    compact = title.replace(" ", "") if re.fullmatch(r"[\u4e00-\u9fff ]+", title) else title
    if compact == "绿色丝绸之路发展大事记":
        return None  # folded into the 附件 part title
    if PART_RE.match(compact):
        if compact == "前言":
            return Heading(1, "0", "前言")
        if compact.startswith("附件"):
            return Heading(1, "a", "附件 绿色丝绸之路发展大事记")
        return Heading(1, str(cn_number(compact.split("、")[0])), compact)
    if in_appendix and (year := YEAR_RE.match(compact)):
        return Heading(2, year.group(1), f"{year.group(1)}年")
    if match := BOX_RE.match(compact):
        return Heading(4, f"b{cn_number(match.group(1))}", f"专栏{match.group(1)} {match.group(2)}".strip())
    if match := SECTION_RE.match(compact):
        is_section = not in_box or any(_similar(match.group(2), t) for t in toc_sections)
        return Heading(2 if is_section else 5, str(cn_number(match.group(1))), compact)
    if match := SUBSECTION_RE.match(compact):
        return Heading(3, match.group(1), f"{match.group(1)}. {match.group(2)}")
    raise ValueError(f"unrecognised heading: {title!r}")


def _blocks(lines: list[str]) -> list[str]:
    """Split body lines into blocks: one heading line, or one paragraph (lines joined)."""
    blocks, current = [], []
    for line in lines + [""]:
        if line.startswith("#") or not line.strip():
            if current:
                blocks.append("".join(part.strip() for part in current))
                current = []
            if line.startswith("#"):
                blocks.append(line)
        else:
            current.append(line)
    return blocks


def _join_fragments(paragraphs: list[str]) -> list[str]:
    """Glue a paragraph cut by a page break back onto its continuation."""
    joined: list[str] = []
    for text in paragraphs:
        if joined and not joined[-1].endswith(SENTENCE_END):
            joined[-1] += text
        else:
            joined.append(text)
    return joined


def clean_report(source: str) -> str:
    """Return the cleaned Markdown of the report body (front matter dropped)."""
    lines = source.splitlines()
    body_start = next(i for i, line in enumerate(lines) if _plain(line).replace(" ", "") == "前言")
    toc = _toc_sections(lines[:body_start])
    out: list[str] = []
    pending: list[str] = []  # paragraphs under the current heading, joined at the next heading
    in_box = in_appendix = False

    def flush() -> None:
        out.extend(p + "\n" for p in _join_fragments(pending))
        pending.clear()

    for block in _blocks(lines[body_start:]):
        if not block.startswith("#"):
            pending.append(_plain(block))
            continue
        heading = _classify(_plain(block), in_box, toc, in_appendix)
        if heading is None:
            continue
        # A page break can fall just before a heading; the fragment then continues after it.
        if pending and not pending[-1].endswith(SENTENCE_END) and heading.level >= 4:
            raise ValueError(f"paragraph cut before heading {heading.title!r}: {pending[-1][-20:]!r}")
        flush()
        in_box = heading.level >= 4
        in_appendix = in_appendix or heading.key == "a"
        out.append(f"{'#' * heading.level} {heading.title}\n")
    flush()
    return "\n".join(out)


def parse_clean(text: str) -> list[tuple[tuple[Heading, ...], str]]:
    """(heading path, paragraph) pairs of a cleaned file, in document order."""
    path: list[Heading] = []
    items = []
    for block in _blocks(text.splitlines()):
        if block.startswith("#"):
            level = len(block) - len(block.lstrip("#"))
            title = _plain(block)
            key = _heading_key(level, title)
            path = [h for h in path if h.level < level] + [Heading(level, key, title)]
        else:
            items.append((tuple(path), block))
    return items


def _heading_key(level: int, title: str) -> str:
    if level == 1:
        return "0" if title == "前言" else "a" if title.startswith("附件") else str(cn_number(title.split("、")[0]))
    if match := YEAR_RE.match(title):
        return match.group(1)
    if match := BOX_RE.match(title):
        return f"b{cn_number(match.group(1))}"
    if match := SECTION_RE.match(title):
        return str(cn_number(match.group(1)))
    return title.split(".")[0]


def heading_id(path: tuple[Heading, ...]) -> str:
    return "h-" + "-".join(h.key for h in path)


def _edition_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_english(path: Path = config.EN_FILE) -> dict[str, str]:
    """id → English text (passages ``p-…`` and headings ``h-…``); empty when the edition is absent."""
    return {row["id"]: row["en"] for row in _edition_rows(path)}


def load_notes(path: Path = config.EN_FILE) -> dict[str, str]:
    """passage id → translator's note, for the rows of en.jsonl that carry one."""
    return {row["id"]: row["note"] for row in _edition_rows(path) if row.get("note")}


def load_passages(zh_path: Path = config.ZH_FILE, en_path: Path = config.EN_FILE) -> list[Passage]:
    english, notes = load_english(en_path), load_notes(en_path)
    counters: dict[str, int] = {}
    passages = []
    for path, text in parse_clean(zh_path.read_text(encoding="utf-8")):
        node = "-".join(h.key for h in path)
        counters[node] = counters.get(node, 0) + 1
        passage_id = f"p-{node}-{counters[node]:03d}"
        section_en = tuple(english.get(heading_id(path[: i + 1]), "") for i in range(len(path)))
        passages.append(
            Passage(
                id=passage_id,
                section_zh=tuple(h.title for h in path),
                zh=text,
                section_en=section_en if all(section_en) else (),
                en=english.get(passage_id, ""),
                note=notes.get(passage_id, ""),
            )
        )
    return passages


def headings(zh_path: Path = config.ZH_FILE) -> dict[str, str]:
    """heading id → Chinese title, for every heading of the cleaned file (used by the translation)."""
    found: dict[str, str] = {}
    for path, _ in parse_clean(zh_path.read_text(encoding="utf-8")):
        for i in range(len(path)):
            found.setdefault(heading_id(path[: i + 1]), path[i].title)
    return found

"""The report's structure as data: table of contents, section leads, sentences and a catalogue of named things.

Built by ``rag build`` from the corpus alone (deterministic code, no model) and stored next to the index
as ``structure-<sha12>.json``, listed and checked by the manifest like the other index files.

- ``toc``: every heading (part, section, subsection, box, project in a box, year of the annex) with its
  id (``h-1-2-1-b1``), level, kind, Chinese and English titles, parent and the passages below it.
- ``leads``: per heading, the first sentence of the first passage below it (Chinese and English).
- ``sentences``: every sentence of the report with its passage id, chunk id and span in the chunk, and
  its aligned English: the unit that broad answers quote and cite.
- ``catalogue``: the named things the report describes. Projects are the box case studies' headings;
  events are the entries of the annex chronology; platforms and coalitions, initiatives, funds,
  institutions and documents come from the glossary's names and the report's titles in 《》, typed by
  how the Chinese name ends. Each entry has its country/region (``rag.places``), years, key figures
  (``rag.numbers``) and the passages that mention it, with Chinese and English names.
"""
from __future__ import annotations

import dataclasses
import re

from rag import places
from rag.chunking import Chunk, chunk_sentences
from rag.corpus import Passage
from rag.glossary import QUOTES_RE, Term
from rag.numbers import extract_numbers

STRUCTURE_VERSION = 2  # 2: catalogue entries carry the glossary note (abbreviations such as GIP)
# Bilateral short forms at the start of a project's name: 中老铁路 is the China–Laos Railway.
SHORT_NAMES = {"中老": "老挝", "中巴": "巴基斯坦", "中柬": "柬埔寨", "泰中": "泰国", "中蒙": "蒙古国"}
KIND_BY_LEVEL = {1: "part", 2: "section", 3: "subsection", 4: "box", 5: "project"}
TYPES = ("project", "platform", "initiative", "fund", "institution", "document", "event")
TITLE_RE = re.compile(r"《([^《》]{4,80})》")
NUMBERING_RE = re.compile(r"^(?:（[一二三四五六七八九十]+）|\(\d+\)|\d+\.|[一二三四五六七八九十]+、|[IVX]+\.)\s*")
ANNEX_DATE_RE = re.compile(r"^(\d{1,2})月(?:(\d{1,2})(?:—\d{1,2})?日)?")
# How a Chinese name ends says what it is; checked in this order (基金会 is an institution, not a fund).
TYPE_SUFFIXES = (
    ("institution", r"基金会$"),
    ("fund", r"基金$"),
    ("document", r"原则$|规划$|意见$|指引$|指南$|纲要$|方案$|宣言$|共识$|备忘录|协定$|协议$|公约$|框架$|目录$|章程$|"
                 r"白皮书$|报告$|愿景与行动$|最佳实践$|新举措$|等级$|通用指南$|通知$"),
    ("platform", r"联盟$|平台$|伙伴关系$|机制$|论坛$|大会$|会议$|对话$|库$"),
    ("initiative", r"倡议$|计划$|行动$|^十百千$"),
    ("project", r"项目$|电站$|铁路$|公路$|码头$|工业园$|工业园区$|示范区$|污水处理厂$|炼厂$|机场$|港$|新城$|风电$"),
    ("institution", r"部$|局$|署$|委$|组织$|银行$|中心$|研究院$|委员会$|公司$|政府$|协会$|商会$|实验室$|金融城$|"
                    r"办公室$|秘书处$|立法院$|能源$|赛迪$|比亚迪$"),
)


@dataclasses.dataclass
class Entry:
    id: str
    type: str
    zh: str
    en: str
    places: list[str]  # Chinese country/region names (rag.places)
    years: list[int]
    figures: list[dict]  # {"text", "value", "kind", "passage"}
    passages: list[str]
    heading: str = ""  # the heading id when the entry is a box project or an annex year's event
    note: str = ""  # the glossary's note (abbreviation, country)


def entry_type(name: str) -> str | None:
    """The catalogue type of a Chinese name, or None for a place, a concept or a person."""
    plain = QUOTES_RE.sub("", name)
    for kind, pattern in TYPE_SUFFIXES:
        if re.search(pattern, plain):
            return kind
    return None


def strip_numbering(title: str) -> str:
    return NUMBERING_RE.sub("", title).strip()


def _toc(passages: list[Passage], english: dict[str, str]) -> list[dict]:
    nodes: dict[str, dict] = {}
    for passage in passages:
        keys = passage.id.split("-")[1:-1]
        for depth in range(1, len(keys) + 1):
            node_id = "h-" + "-".join(keys[:depth])
            if node_id not in nodes:
                level = _level(keys[:depth], passage.section_zh)
                nodes[node_id] = {
                    "id": node_id, "level": level,
                    "kind": "year" if keys[0] == "a" and depth == 2 else KIND_BY_LEVEL[level],
                    "zh": passage.section_zh[depth - 1], "en": english.get(node_id, ""),
                    "parent": "h-" + "-".join(keys[:depth - 1]) if depth > 1 else None, "passages": []}
            nodes[node_id]["passages"].append(passage.id)
    return list(nodes.values())


def _level(keys: list[str], section_zh: tuple[str, ...]) -> int:
    """The heading level of the last key: boxes are level 4 and projects inside a box level 5."""
    if keys[-1].startswith("b"):
        return 4
    if any(k.startswith("b") for k in keys[:-1]):
        return 5
    return min(len(keys), 3)


def _sentences(chunks: list[Chunk]) -> list[dict]:
    rows = []
    for chunk in chunks:
        for sentence in chunk_sentences(chunk):
            line = chunk.zh.count("\n", 0, sentence.span[0])
            passage = chunk.passage_ids[min(line, len(chunk.passage_ids) - 1)]
            rows.append({"passage": passage, "chunk": chunk.id, "zh": sentence.zh, "en": sentence.en,
                         "span": list(sentence.span)})
    return rows


def _figures(rows: list[dict]) -> list[dict]:
    found = []
    for row in rows:
        for quantity in extract_numbers(row["zh"]):
            if quantity.kind in ("number", "percent"):
                found.append({"text": quantity.text, "value": quantity.value, "kind": quantity.kind,
                              "passage": row["passage"]})
    return found


def _years(rows: list[dict]) -> list[int]:
    return sorted({int(q.value) for row in rows for q in extract_numbers(row["zh"]) if q.kind == "year"})


def _entry(entry_id: str, kind: str, zh: str, en: str, rows: list[dict], heading: str = "",
           where: str = "") -> Entry:
    """``where``: the text that places the entry (a project's heading and first sentence); else its name."""
    short = next((p for prefix, p in SHORT_NAMES.items() if zh.startswith(prefix)), None)
    found = places.find_zh(where or zh) or ([places.find_zh(short)[0]] if short else [])
    return Entry(entry_id, kind, zh, en, [p.zh for p in found], _years(rows[:3]), _figures(rows),
                 list(dict.fromkeys(r["passage"] for r in rows)), heading)


def _catalogue(toc: list[dict], sentences: list[dict], glossary: tuple[Term, ...]) -> list[Entry]:
    by_passage: dict[str, list[dict]] = {}
    for row in sentences:
        by_passage.setdefault(row["passage"], []).append(row)
    entries: list[Entry] = []
    for node in toc:
        rows = [r for p in node["passages"] for r in by_passage[p]]
        if node["kind"] == "project":
            name = strip_numbering(node["zh"])
            where = name + "".join(r["zh"] for r in rows)
            entries.append(_entry(f"e-{node['id'][2:]}", "project", name, strip_numbering(node["en"]), rows,
                                  node["id"], where))
        elif node["kind"] == "year":
            for passage in node["passages"]:
                first = by_passage[passage][0]
                entry = _entry(f"e-{passage[2:]}", "event", _event_title(first["zh"], node["zh"]),
                               first["en"], by_passage[passage], node["id"], first["zh"])
                entry.years = [int(node["zh"][:4])]
                entries.append(entry)
    known = {e.zh for e in entries}
    named = {QUOTES_RE.sub("", t.zh): t for t in glossary}
    titles = {QUOTES_RE.sub("", t) for row in sentences for t in TITLE_RE.findall(row["zh"])}
    titles |= {QUOTES_RE.sub("", t.zh) for t in glossary if t.zh.startswith("《")}
    for title in sorted(titles):  # a set's order changes with the process's hash seed: the ids must not
        named.setdefault(title, Term(title, ""))
    for plain, term in sorted(named.items(), key=lambda item: -len(item[0])):
        kind = entry_type(plain) or ("document" if plain in titles else None)
        if not kind or plain in known:
            continue
        rows = [r for r in sentences if plain in QUOTES_RE.sub("", r["zh"])]
        if rows:
            known.add(plain)
            noted = places.find_in_question(term.note) if term.note else []
            entry = _entry(f"e-{len(entries) + 1:03d}", kind, plain, term.en, rows,
                           where=plain + "".join(p.zh for p in noted))
            entry.note = term.note
            entries.append(entry)
    return entries


def _event_title(text: str, year: str) -> str:
    """An annex entry's date and first clause: '2020年7月16日 中国生态环境部与老挝环境部签署…'."""
    first = re.split(r"[。；]", text, maxsplit=1)[0]
    match = ANNEX_DATE_RE.match(first)
    date = year + (match.group(0) if match else "")
    body = first[match.end():].lstrip("，, ") if match else first
    return f"{date} {body}"


def build_structure(passages: list[Passage], chunks: list[Chunk], english: dict[str, str],
                    glossary: tuple[Term, ...]) -> dict:
    """The structure as plain JSON-ready data (see the module docstring)."""
    toc = _toc(passages, english)
    sentences = _sentences(chunks)
    first_sentence: dict[str, dict] = {}
    for row in sentences:
        first_sentence.setdefault(row["passage"], row)
    leads = {node["id"]: {"zh": first_sentence[node["passages"][0]]["zh"],
                          "en": first_sentence[node["passages"][0]]["en"],
                          "passage": node["passages"][0]} for node in toc}
    return {"version": STRUCTURE_VERSION, "toc": toc, "leads": leads, "sentences": sentences,
            "catalogue": [dataclasses.asdict(e) for e in _catalogue(toc, sentences, glossary)]}

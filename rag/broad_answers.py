"""Answers about the whole report, built in code from its structure (no model): lists, overviews, comparisons.

- **list**: every sentence of the report that the question's filters select (place, named thing, year of
  the annex, kind of item: agreements, awards, documents issued …), grouped into items (one per box
  project, annex event or catalogue entry named, else one per sentence), each quoted and cited; the
  count comes first.
- **overview**: one line, then a bullet per part of what was asked about: a named thing's mentions
  across the report, a part or section's subsections (each with its most informative sentences and its
  box projects), or the whole report's parts. Every bullet quotes and cites the report.
- **compare**: the facts of each compared thing side by side, and the comparison computed in code from
  values with the same unit (normalised by ``rag.numbers``).

Quotes are the report's own sentences, Chinese for zh/ja readers and the English edition otherwise, so
each item is held by the passage it cites by construction. ``None`` means the question names nothing
the structure can answer from; the caller then answers it as a single-fact question.
"""
from __future__ import annotations

import dataclasses
import functools
import re
import time

from rag import places
from rag.broad import COMPARE, LIST
from rag.glossary import QUOTES_RE
from rag.numbers import extract_numbers
from rag.scope import ATTRIBUTES, SENTENCE_CUES, Scope, ScopeReader, terms, zh_keys
from rag.structure import strip_numbering

CATALOGUE_TYPES = ("project", "platform", "initiative", "fund", "institution", "document", "event")
ZH_READERS = ("zh", "ja")  # readers of the Chinese quotes; the others read the English edition
RELATED_PASSAGES = 6  # bullets of an overview of a topic that no section holds
MAX_BULLETS = 9  # a part with more children (the annex's nine years) still fits one screen
KEY_SENTENCES = 3  # sentences quoted per overview bullet
FACTS_PER_TARGET = 4
SUPERLATIVE_RE = re.compile(r"最大|最长|最高|首个|首座|首条|首批|第一|首次|最现代")
UNIT_RE = re.compile(r"\s*(千瓦时|度|kWh|吨|兆瓦|吉瓦|千瓦|MW|GW|公里|千米|km|美元|元|人|户)")
UNIT_SCALE = {"吉瓦": ("瓦", 1e9), "GW": ("瓦", 1e9), "兆瓦": ("瓦", 1e6), "MW": ("瓦", 1e6), "千瓦": ("瓦", 1e3),
              "千瓦时": ("千瓦时", 1), "度": ("千瓦时", 1), "kWh": ("千瓦时", 1), "千米": ("公里", 1), "km": ("公里", 1)}

TEXT = {
    "list": {"zh": "报告中共有 {n} 项：", "en": "The report names {n}:", "fr": "Le rapport en cite {n} :",
             "es": "El informe menciona {n}:", "de": "Der Bericht nennt {n}:", "ru": "В докладе упомянуто {n}:",
             "ja": "報告書には {n} 件が記載されています：", "ar": "يذكر التقرير {n}:"},
    "overview": {"zh": "{title}：{n} 个要点。", "en": "{title}: {n} points.", "fr": "{title} : {n} points.",
                 "es": "{title}: {n} puntos.", "de": "{title}: {n} Punkte.", "ru": "{title}: {n} пунктов.",
                 "ja": "{title}：{n} つの要点。", "ar": "{title}: {n} نقاط."},
    "about": {"zh": "报告关于{name}的论述", "en": "What the report says about {name}",
              "fr": "Ce que dit le rapport sur {name}", "es": "Lo que dice el informe sobre {name}",
              "de": "Was der Bericht über {name} sagt", "ru": "Что доклад говорит о {name}",
              "ja": "{name}に関する報告書の記述", "ar": "ما يقوله التقرير عن {name}"},
    "related": {"zh": "报告中与该问题最相关的 {n} 段：", "en": "The {n} passages of the report closest to the question:",
                "fr": "Les {n} passages du rapport les plus proches de la question :",
                "es": "Los {n} pasajes del informe más cercanos a la pregunta:",
                "de": "Die {n} Abschnitte des Berichts, die der Frage am nächsten sind:",
                "ru": "{n} фрагментов доклада, ближайших к вопросу:", "ja": "質問に最も近い報告書の {n} 段落：",
                "ar": "أقرب {n} فقرات من التقرير إلى السؤال:"},
    "report": {"zh": "《绿色丝绸之路发展报告（2023）》", "en": "The Green Silk Road Development Report (2023)",
               "fr": "Le Rapport sur le développement de la Route de la soie verte (2023)",
               "es": "El Informe sobre el desarrollo de la Ruta de la Seda Verde (2023)",
               "de": "Der Bericht zur Entwicklung der Grünen Seidenstraße (2023)",
               "ru": "Доклад о развитии Зелёного Шёлкового пути (2023)",
               "ja": "『グリーン・シルクロード発展報告（2023）』", "ar": "تقرير تنمية طريق الحرير الأخضر (2023)"},
    "compare": {"zh": "对比：", "en": "Side by side:", "fr": "Comparaison :", "es": "Comparación:",
                "de": "Im Vergleich:", "ru": "Сравнение:", "ja": "比較：", "ar": "مقارنة:"},
    "ratio": {"zh": "{a}（{va}）约为{b}（{vb}）的 {r} 倍。", "en": "{a} ({va}) is about {r} times {b} ({vb}).",
              "fr": "{a} ({va}) représente environ {r} fois {b} ({vb}).",
              "es": "{a} ({va}) es unas {r} veces {b} ({vb}).", "de": "{a} ({va}) ist etwa das {r}-Fache von {b} ({vb}).",
              "ru": "{a} ({va}) примерно в {r} раза больше, чем {b} ({vb}).",
              "ja": "{a}（{va}）は{b}（{vb}）の約 {r} 倍です。", "ar": "{a} ({va}) يعادل نحو {r} أضعاف {b} ({vb})."},
    "box": {"zh": "案例", "en": "Cases", "fr": "Cas", "es": "Casos", "de": "Fallbeispiele", "ru": "Примеры",
            "ja": "事例", "ar": "حالات"},
}


@dataclasses.dataclass
class BroadResult:
    text: str
    cited: list[dict]  # sentence rows of the structure, in marker order (marker = position + 1)
    table: str = ""  # a comparison's values side by side: lines of " | "-separated cells, header first


def _t(key: str, language: str, **values) -> str:
    return TEXT[key].get(language, TEXT[key]["en"]).format(**values)


class BroadAnswerer:
    """Answers overview / list / compare questions from one stored structure."""

    def __init__(self, structure: dict):
        self.structure = structure
        self.reader = ScopeReader(structure)
        self.sentences = structure["sentences"]
        self.nodes = {n["id"]: n for n in structure["toc"]}
        self.children: dict[str, list[dict]] = {}
        for node in structure["toc"]:
            if node["parent"]:
                self.children.setdefault(node["parent"], []).append(node)
        self.by_passage: dict[str, list[dict]] = {}
        for row in self.sentences:
            self.by_passage.setdefault(row["passage"], []).append(row)
        self.named = sorted((e for e in structure["catalogue"] if e["type"] != "event"), key=lambda e: -len(e["zh"]))
        self.projects = {p: e for e in structure["catalogue"] if e["type"] == "project" and e["heading"]
                         for p in e["passages"]}

    # ---- entry points --------------------------------------------------------------------------------

    def answer(self, question: str, kind: str, language: str, scores=None) -> BroadResult | None:
        """``scores(question)``: the question's similarity to every sentence of the structure, in order; it
        finds the passages of an overview's topic when no title names it."""
        scope = self.reader.resolve(question)
        writer = _Writer(language)
        if kind == LIST:
            done = self._list(scope, writer, question)
        elif kind == COMPARE:
            done = self._compare(scope, writer)
        else:
            done = self._overview(scope, writer, question, scores)
        return BroadResult(writer.text(), writer.cited, "\n".join(writer.table)) if done else None

    # ---- lists ---------------------------------------------------------------------------------------

    def _list(self, scope: Scope, writer: "_Writer", question: str) -> bool:
        rows = self._select(scope)
        items: dict[str, list[dict]] = {}
        for row in rows:
            items.setdefault(self._item_key(row), []).append(row)
        if not items:
            items = self._catalogue_items(scope, question)
        if not items:
            return False
        writer.line(_t("list", writer.language, n=len(items)))
        for number, (key, group) in enumerate(items.items(), start=1):
            label = self._item_label(key, writer.language)
            writer.line(f"{number}. " + (f"{label}: " if label else "") + writer.quote(group[0]))
        return True

    def _select(self, scope: Scope) -> list[dict]:
        """Sentences the list's filters select: places, named things and years narrow; else a named part."""
        rows = self.sentences
        narrowed = False
        if scope.years:
            rows = [r for r in rows if r["passage"].startswith("p-a-") and int(r["passage"][4:8]) in scope.years]
            rows = [self.by_passage[p][0] for p in dict.fromkeys(r["passage"] for r in rows)]  # one per event
            narrowed = True
        if scope.places:
            rows = [r for r in rows if self._names_place(r, scope.places)]
            narrowed = True
        if scope.entries:
            keys = [k for e in scope.entries for k in zh_keys(e)]
            rows = [r for r in rows if any(k in QUOTES_RE.sub("", r["zh"]) for k in keys)]
            narrowed = True
        if not narrowed and scope.nodes:
            inside = {p for n in scope.nodes for p in n["passages"]}
            rows = [r for r in rows if r["passage"] in inside]
            narrowed = True
        for cue in (t for t in scope.types if t in SENTENCE_CUES):
            if narrowed or cue == "award":
                rows = [r for r in rows if re.search(SENTENCE_CUES[cue], r["zh"])]
                narrowed = True
        if "agreement" in scope.types and "document" in scope.types:
            pass  # both kinds asked: the two cues above already kept sentences with either
        return rows if narrowed else []

    def _catalogue_items(self, scope: Scope, question: str) -> dict[str, list[dict]]:
        """Every catalogue entry of the kinds asked (projects, platforms, funds …), within the section the
        question names or is about, each with the sentences that mention it there."""
        kinds = [t for t in scope.types if t in CATALOGUE_TYPES]
        node = scope.nodes[0] if scope.nodes else scope.topic
        inside = set(node["passages"]) if node else None
        entries = [e for e in self.structure["catalogue"] if e["type"] in kinds]
        asked = terms(question)
        shared = {e["id"]: len(asked & (terms(e["zh"]) | terms(e["en"]))) for e in entries}
        best = max(shared.values(), default=0)
        if best >= 2:  # the question names what kind of platform, fund … (联合实验室): keep those
            entries = [e for e in entries if shared[e["id"]] == best]
        items = {}
        for entry in entries:
            passages = [p for p in entry["passages"] if inside is None or p in inside]
            rows = [r for p in passages for r in self.by_passage[p] if _mentions(r, entry)]
            rows = rows or [self.by_passage[p][0] for p in passages if entry["heading"]]
            if rows:
                items[f"entry:{entry['id']}"] = rows
        return items

    @staticmethod
    def _names_place(row: dict, wanted: list[places.Place]) -> bool:
        found = places.find_zh(row["zh"])
        return any(p in found or (p.is_region and any(f.region == p.zh for f in found)) for p in wanted)

    def _item_key(self, row: dict) -> str:
        passage = row["passage"]
        if passage in self.projects:
            return "entry:" + self.projects[passage]["id"]
        if passage.startswith("p-a-"):
            return "passage:" + passage
        plain = QUOTES_RE.sub("", row["zh"])
        entry = next((e for e in self.named if e["zh"] in plain and e["type"] != "institution"), None)
        return f"entry:{entry['id']}" if entry else f"sentence:{passage}:{row['span'][0]}"

    def _item_label(self, key: str, language: str) -> str:
        kind, _, ident = key.partition(":")
        if kind != "entry":
            return ""
        entry = next(e for e in self.structure["catalogue"] if e["id"] == ident)
        return display(entry["zh"], entry["en"], language)

    # ---- overviews -----------------------------------------------------------------------------------

    def _overview(self, scope: Scope, writer: "_Writer", question: str, scores) -> bool:
        if scope.entries:
            return self._about_entries(scope.entries, writer)
        node = scope.nodes[0] if scope.nodes else scope.topic
        if node is not None:
            return self._about_node(node, writer)
        if scope.whole or scores is None:
            return self._whole_report(writer)
        return self._about_question(scores(question), writer)

    def _about_question(self, scores, writer: "_Writer") -> bool:
        """A topic no title names: the passages whose sentences are nearest the question, one bullet each."""
        if scores is None or len(scores) != len(self.sentences):
            return self._whole_report(writer)
        best: dict[str, int] = {}
        for i in scores.argsort()[::-1]:
            best.setdefault(self.sentences[int(i)]["passage"], int(i))
            if len(best) == RELATED_PASSAGES:
                break
        writer.line(_t("related", writer.language, n=len(best)))
        for passage, i in sorted(best.items(), key=lambda kv: kv[1]):
            writer.line(f"- {self._where(passage, writer.language)}: {writer.quote(self.sentences[i])}")
        return True

    def _about_entries(self, entries: list[dict], writer: "_Writer") -> bool:
        keys = [k for e in entries for k in zh_keys(e)]
        passages = list(dict.fromkeys(r["passage"] for r in self.sentences
                                      if any(k in QUOTES_RE.sub("", r["zh"]) for k in keys)))
        if not passages:
            return False
        name = ", ".join(display(e["zh"], e["en"], writer.language) for e in entries)
        writer.line(_t("overview", writer.language, title=_t("about", writer.language, name=name), n=len(passages)))
        for passage in passages[:MAX_BULLETS]:
            rows = self.by_passage[passage]
            first = next(i for i, r in enumerate(rows) if any(k in QUOTES_RE.sub("", r["zh"]) for k in keys))
            chosen = rows[first:first + KEY_SENTENCES]
            writer.line(f"- {self._where(passage, writer.language)}: " + " ".join(writer.quote(r) for r in chosen))
        return True

    def _about_node(self, node: dict, writer: "_Writer") -> bool:
        children = [c for c in self.children.get(node["id"], []) if c["kind"] != "project"]
        intro = [p for p in node["passages"] if not any(p in c["passages"] for c in children)]
        points = len(children) + (1 if intro and children else len(intro) if not children else 0)
        writer.line(_t("overview", writer.language, title=self._title(node, writer.language), n=points))
        if children and intro:
            writer.line("- " + " ".join(writer.quote(r) for r in self._key_rows(intro)))
        if not children:
            for passage in intro[:MAX_BULLETS]:
                writer.line("- " + " ".join(writer.quote(r) for r in self._key_rows([passage], KEY_SENTENCES + 1)))
        for child in children[:MAX_BULLETS]:
            writer.line(f"- {self._title(child, writer.language)}: " + self._child_summary(child, writer))
        return True

    def _child_summary(self, child: dict, writer: "_Writer") -> str:
        grandchildren = self.children.get(child["id"], [])
        own = [p for p in child["passages"] if not any(p in g["passages"] for g in grandchildren)]
        parts = [writer.quote(r) for r in self._key_rows(own)] if own else []
        subsections = [g for g in grandchildren if g["kind"] == "subsection"]
        if subsections:
            parts.append("; ".join(f"{self._title(g, writer.language)}{writer.cite(self.by_passage[g['passages'][0]][0])}"
                                   for g in subsections))
        boxes = [g for g in self._descendants(child) if g["kind"] == "box"]
        for box in boxes:
            cases = self._box_cases(box)
            parts.append(f"{_t('box', writer.language)}: " + "; ".join(
                f"{display(e['zh'], e['en'], writer.language)}{writer.cite(self.by_passage[e['passages'][0]][0])}"
                for e in cases))
        if child["kind"] == "box":
            parts = [f"{display(e['zh'], e['en'], writer.language)}{writer.cite(self.by_passage[e['passages'][0]][0])}"
                     for e in self._box_cases(child)]
        return " ".join(parts)

    def _box_cases(self, box: dict) -> list[dict]:
        """The named projects of a box: its project headings, or the catalogue's projects inside a generic one."""
        inside = set(box["passages"])
        cases = []
        for project in (n for n in self._descendants(box) if n["kind"] == "project"):
            named = [e for e in self.named if e["type"] == "project" and set(e["passages"]) <= set(project["passages"])]
            heading = next(e for e in self.structure["catalogue"] if e["heading"] == project["id"])
            cases += named if named and len(named) > 1 else [heading]
        return [c for c in cases if set(c["passages"]) & inside]

    def _descendants(self, node: dict) -> list[dict]:
        found = []
        for child in self.children.get(node["id"], []):
            found += [child, *self._descendants(child)]
        return found

    def _whole_report(self, writer: "_Writer") -> bool:
        parts = [n for n in self.structure["toc"] if n["kind"] == "part"]
        writer.line(_t("overview", writer.language, title=_t("report", writer.language), n=len(parts)))
        for part in parts:
            children = [c for c in self.children.get(part["id"], []) if c["kind"] in ("section", "year")]
            # the annex's entries are events, not a summary: its years are its contents
            lead = "" if part["id"] == "h-a" else writer.quote(self.by_passage[part["passages"][0]][0]) + " "
            listed = "; ".join(f"{self._title(c, writer.language)}{writer.cite(self.by_passage[c['passages'][0]][0])}"
                               for c in children)
            writer.line(f"- {self._title(part, writer.language)}: {lead}{listed}".rstrip())
        return True

    def _key_rows(self, passages: list[str], limit: int = KEY_SENTENCES) -> list[dict]:
        """The most informative sentences of some passages (lead, figures, names), in document order."""
        rows = [r for p in passages for r in self.by_passage[p]]
        scored = sorted(range(len(rows)), key=lambda i: -(self._information(rows[i]) + (1 if i == 0 else 0)))
        return [rows[i] for i in sorted(scored[:limit])]

    def _information(self, row: dict) -> int:
        figures = sum(q.kind in ("number", "percent", "year") for q in extract_numbers(row["zh"]))
        names = sum(e["zh"] in QUOTES_RE.sub("", row["zh"]) for e in self.named)
        return figures + names + (1 if SUPERLATIVE_RE.search(row["zh"]) else 0) - (2 if len(row["zh"]) < 20 else 0)

    def _title(self, node: dict, language: str) -> str:
        return node["zh"] if language in ZH_READERS or not node["en"] else f"{node['en']} ({strip_numbering(node['zh'])})"

    def _where(self, passage: str, language: str) -> str:
        keys = passage.split("-")[1:-1]
        node = self.nodes["h-" + "-".join(keys)]
        return strip_numbering(node["zh"]) if language in ZH_READERS or not node["en"] else strip_numbering(node["en"])

    # ---- comparisons ---------------------------------------------------------------------------------

    def _compare(self, scope: Scope, writer: "_Writer") -> bool:
        targets = [(display(e["zh"], e["en"], writer.language), self._entry_rows(e)) for e in scope.entries]
        if len(targets) < 2:
            targets = [(p.zh if writer.language in ZH_READERS else f"{p.en} ({p.zh})",
                        [r for r in self.sentences if p in places.find_zh(r["zh"])]) for p in scope.places]
        targets = [(name, rows) for name, rows in targets if rows]
        # a name met only inside another compared thing's passages is part of it (蒙巴萨港 in 蒙内铁路's box)
        targets = [(name, rows) for name, rows in targets if not any(
            other != name and {r["passage"] for r in rows} < {r["passage"] for r in other_rows}
            for other, other_rows in targets)]
        if len(targets) < 2:
            return False
        writer.line(_t("compare", writer.language))
        facts = {}
        for name, rows in targets:
            chosen = self._facts(rows, scope.attributes)
            facts[name] = chosen
            writer.line(f"- {name}: " + " ".join(writer.quote(r) for r in chosen))
        for attribute in scope.attributes:
            values = [(name, _value(facts[name], attribute)) for name, _ in targets]
            if sum(v is not None for _, v in values) >= 2:
                if not writer.table:
                    writer.table.append(" | ".join(["", *(name for name, _ in targets)]))
                writer.table.append(" | ".join([_attribute_label(attribute, writer.language), *(
                    _shown(v[0], v[1], writer.language) + writer.cite(v[2]) if v else "-" for _, v in values)]))
            values = [(name, v) for name, v in values if v]
            if len(values) >= 2 and values[0][1][1] == values[1][1][1]:
                (a, (va, unit, ra)), (b, (vb, _, rb)) = sorted(values[:2], key=lambda x: -x[1][0])
                if vb > 0:
                    writer.line("→ " + _t("ratio", writer.language, a=a, b=b, va=_shown(va, unit, writer.language) + writer.cite(ra),
                                          vb=_shown(vb, unit, writer.language) + writer.cite(rb), r=f"{va / vb:.1f}"))
        return True

    def _entry_rows(self, entry: dict) -> list[dict]:
        if entry["heading"]:
            return [r for p in entry["passages"] for r in self.by_passage[p]]
        keys = zh_keys(entry)
        rows = [r for r in self.sentences if any(k in QUOTES_RE.sub("", r["zh"]) for k in keys)]
        # the sentences after a mention in the same passage usually go on about the same thing
        extended = []
        for row in rows:
            siblings = self.by_passage[row["passage"]]
            at = siblings.index(row)
            extended += [s for s in siblings[at:at + 2] if s not in extended]
        return extended

    def _facts(self, rows: list[dict], attributes: list[str]) -> list[dict]:
        wanted = [r for r in rows if any(re.search(ATTRIBUTES[a][1], r["zh"]) for a in attributes)]
        informative = [r for r in rows if r not in wanted and self._information(r) > 0]
        informative.sort(key=lambda r: -self._information(r))
        chosen = (wanted + informative)[:FACTS_PER_TARGET]
        return sorted(chosen, key=rows.index)


ATTRIBUTE_UNITS = {"electricity": ("千瓦时",), "coal": ("吨",), "co2": ("吨",), "people": ("人", "户"),
                   "capacity": ("瓦",), "length": ("公里",), "money": ("美元", "元")}


def _mentions(row: dict, entry: dict) -> bool:
    return any(k in QUOTES_RE.sub("", row["zh"]) for k in zh_keys(entry))


def _value(rows: list[dict], attribute: str) -> tuple[float, str, dict] | None:
    """The first quantity about ``attribute`` with its unit: (value in the base unit, base unit, row)."""
    cue = ATTRIBUTES[attribute][1]
    for row in rows:
        for quantity in extract_numbers(row["zh"]):
            unit = UNIT_RE.match(row["zh"], quantity.span[1])
            if quantity.kind != "number" or not unit:
                continue
            base, factor = UNIT_SCALE.get(unit.group(1), (unit.group(1), 1))
            context = row["zh"][max(0, quantity.span[0] - 16):unit.end() + 6]  # "减少 140 万吨碳排放"
            if base in ATTRIBUTE_UNITS[attribute] and re.search(cue, context):
                return quantity.value * factor, base, row
    return None


ATTRIBUTE_LABELS = {"electricity": ("年发电量", "electricity"), "coal": ("节约标准煤", "standard coal saved"),
                    "co2": ("二氧化碳减排", "CO2 avoided"), "people": ("人口", "people"),
                    "capacity": ("装机容量", "capacity"), "length": ("长度", "length"), "money": ("金额", "money")}


def _attribute_label(attribute: str, language: str) -> str:
    return ATTRIBUTE_LABELS[attribute][0 if language in ZH_READERS else 1]


UNIT_NAMES = {"吨": "t", "千瓦时": "kWh", "瓦": "W", "公里": "km", "美元": "US$", "元": "yuan", "人": "people", "户": "households"}


def _shown(value: float, unit: str, language: str) -> str:
    if language in ZH_READERS:
        big = next(((value / f, w) for f, w in ((1e8, "亿"), (1e4, "万")) if value >= f), (value, ""))
        return f"{big[0]:g} {big[1]}{unit}"
    return f"{value:,.0f} {UNIT_NAMES.get(unit, unit)}"


def display(zh: str, en: str, language: str) -> str:
    """A name for the reader: Chinese for zh/ja, else the English name with the Chinese after it."""
    zh = QUOTES_RE.sub("", zh)
    return zh if language in ZH_READERS or not en else f"{en} ({zh})"


class _Writer:
    """Collects answer lines; each quoted sentence gets the next citation marker (reused when quoted again)."""

    def __init__(self, language: str):
        self.language = language
        self.lines: list[str] = []
        self.cited: list[dict] = []
        self.table: list[str] = []

    def cite(self, row: dict) -> str:
        if row not in self.cited:
            self.cited.append(row)
        return f"[{self.cited.index(row) + 1}]"

    def quote(self, row: dict) -> str:
        text = row["zh"] if self.language in ZH_READERS or not row["en"] else row["en"]
        return text.strip() + self.cite(row)

    def line(self, text: str) -> None:
        self.lines.append(text)

    def text(self) -> str:
        return "\n".join(self.lines)


@functools.lru_cache(maxsize=4)
def answerer_for(settings) -> BroadAnswerer:
    """One answerer per index (the structure is loaded and checked once)."""
    from rag.index import load_structure

    return BroadAnswerer(load_structure(settings))


def broad_events(pipeline, question: str, kind: str, language: str | None, start: float) -> list | None:
    """The pipeline's events for a broad question ("stage", "evidence", "answer"), or None to answer it as a
    single fact (nothing in the structure matched what it asks about)."""
    from rag.answer import ANSWERED, EXTRACTIVE, Answer, citation_of
    from rag.chunking import Sentence
    from rag.language import detect_language

    language = language or detect_language(question)

    def scores(text: str):
        return pipeline.retriever.search(text, pipeline.settings.top_k).sentence_scores

    result = answerer_for(pipeline.settings).answer(question, kind, language, scores)
    if result is None:
        return None
    chunks = {c.id: c for c in pipeline.retriever.chunks}
    citations = []
    for marker, row in enumerate(result.cited, start=1):
        chunk = chunks[row["chunk"]]
        citations.append(citation_of(marker, chunk, Sentence(row["zh"], row["en"], tuple(row["span"])), supported=True))
    elapsed = round((time.perf_counter() - start) * 1000, 1)
    quotes = [c.sentence_zh if language in ZH_READERS or not c.sentence_en else c.sentence_en for c in citations]
    answer = Answer(question, language, result.text, False, citations, EXTRACTIVE,
                    {"retrieve_ms": elapsed, "total_ms": elapsed}, quotes=quotes, outcome=ANSWERED, kind=kind,
                    working=result.table)
    return [("stage", "reading"), ("evidence", citations), ("answer", answer)]

"""What a broad question is about: parts and sections, named things, places, years, kinds of item, attributes.

``resolve_scope`` reads a question in any supported language against the report's structure
(rag/structure.py): a part named by its usual word (preface, outlook, chronology …), a section or
subsection by its Chinese title, a catalogue entry by its Chinese name, its English name (matched by
word stems, so "ministère de l'Écologie et de l'Environnement" finds the Ministry of Ecology and
Environment) or its abbreviation (GIP, IPSF), places (rag/places.py), years, the kind of item asked for
(projects, events, documents, agreements, awards …) and, for comparisons, the attribute compared
(electricity, coal, CO2, people, capacity, length, money).
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter

from rag import places
from rag.broad import fold
from rag.glossary import QUOTES_RE
from rag.structure import strip_numbering

STEM = 5  # word stems: the first five letters match across English, French, Spanish and German forms
WORD_RE = re.compile(r"[a-z\u00c0-\u024f]{2,}")
YEAR_RE = re.compile(r"(?<!\d)(20[12]\d)(?!\d)")
ABBREVIATION_RE = re.compile(r"\b[A-Z][A-Z0-9]{1,5}\b")
# Words too common in the catalogue's English names to identify an entry by themselves.
TOPIC_MARGIN = 1.3  # the best title must outweigh the next by this factor to name the topic
# Han bigrams in nearly every title or question ("绿色", "发展", "报告"): no evidence of a topic.
HAN_COMMON = {"绿色", "发展", "报告", "合作", "一带", "带一", "一路", "共建", "持续", "积极", "推进", "提升", "加强", "携手",
              "哪些", "什么", "主要", "内容", "概括", "总结"}
STOP = {"the", "and", "for", "of", "on", "in", "to", "with", "an", "at", "by"}
PART_WORDS = {
    "h-0": r"前言|preface|prefac|vorwort|предислови|序文|まえがき|はじめに|مقدمة|تمهيد",
    "h-1": r"发展成效|development achievements|réalisations|logros|erfolge|достижени|発展の成果|إنجازات",
    "h-2": r"发展启示|lessons|enseignements|lecciones|lehren|уроки|示唆|教訓|دروس",
    "h-3": r"发展展望|未来|outlook|future|perspectives|avenir|perspectivas|futuro|ausblick|zukunft|перспектив|будущ|展望|"
           r"将来|今後|آفاق|مستقبل",
    "h-a": r"附件|大事记|大事記|chronolog|annex|anexo|anhang|chronik|хронолог|приложени|付属資料|年表|التسلسل الزمني|ملحق",
}
# An overview of the report as a whole ("主要内容", "main points"), rather than of one of its topics.
WHOLE_REPORT = (r"主要内容|主要讲|整份|全文|main (?:points|content|contents|themes|messages|parts|sections)|"
                r"what is (?:the|this) report about|whole report|entire report|contenu principal|points principaux|"
                r"ensemble du rapport|contenido principal|puntos principales|todo el informe|hauptpunkte|"
                r"wichtigsten punkte|gesamten bericht|основн\w* (?:содержани|тезис|положени|иде|част)|весь доклад|"
                r"主な内容|全体|المحتوى الرئيسي|النقاط الرئيسية|de quoi (?:parle|traite) le rapport|"
                r"de que (?:trata|habla) el informe|worum geht es im bericht|о ч[её]м доклад|يتحدث التقرير|"
                r"what does the report cover|tell me about (?:the|this) report(?!'s)")
# Kinds of item a list question asks for; catalogue types, or sentence cues for kinds that are not.
TYPE_WORDS = {
    "project": r"项目|工程|project|projet|proyecto|projekt|проект|プロジェクト|事業|مشروع|مشاريع",
    "event": r"事件|大事|发生|event|événement|evenement|evento|acontecimiento|ereignis|geschah|событи|произош|出来事|أحداث|حدث",
    "document": r"文件|政策|规划|document|polic|politique|política|dokument|документ|политик|文書|政策|وثائق|وثيقة|سياس",
    "agreement": r"协议|备忘录|协定|签署|agreement|\baccords?\b|memorand|acuerdo|abkommen|vereinbarung|соглашени|"
                 r"меморандум|協定|覚書|اتفاق|مذكر",
    "platform": r"平台|联盟|伙伴关系|platform|plateforme|plataforma|plattform|coalition|alliance|alianza|allianz|"
                r"платформ|коалици|альянс|プラットフォーム|連盟|منص|تحالف",
    "initiative": r"倡议|initiative|iniciativa|инициатив|イニシアティブ|構想|مبادر",
    "fund": r"基金|\bfunds?\b|\bfonds\b|\bfondos?\b|фонд|صندوق|صناديق",
    "institution": r"机构|中心|实验室|研究院|银行|institution|institución|laborator|\bcent(?:re|er|ro)s?\b|\bbanks?\b|"
                   r"zentren|организаци|учреждени|лаборатори|機関|研究所|مؤسس|مختبر|مراكز",
    "award": r"奖|荣誉|award|honou?r|prix|premio|auszeichnung|preis|наград|преми|賞|表彰|جائز",
}
# Sentence cues for the kinds that are not catalogue types (and for documents issued rather than signed).
SENTENCE_CUES = {
    "agreement": r"签署|签订|协议|备忘录|协定",
    "award": r"奖|授予|评为|获评|荣誉",
    "document": r"《[^》]+》.{0,8}$|(?:发布|印发|出台|制定)[^，。；]{0,20}《",
}
ATTRIBUTES = {
    "electricity": (r"electric|électric|electric|strom|электроэнерг|выработ|電力|発電|كهرباء|发电|电量|电力|供电",
                    r"千瓦时|度|kWh"),
    "coal": (r"coal|charbon|carbón|carbon estandar|kohle|угл|уголь|石炭|فحم|煤", r"煤"),
    "co2": (r"co2|co₂|dioxyde|dióxido|dioxid|углекисл|выброс|二酸化炭素|排出|انبعاث|二氧化碳|碳排放|减排", r"二氧化碳|碳排放|减排|减少排放"),
    "people": (r"population|people|résidents|habitants|población|habitantes|personas|bevölkerung|einwohner|menschen|"
               r"населени|жител|人口|住民|سكان|人口|居民|住户|家庭", r"人口|居民|住户|户"),
    "capacity": (r"capacit|kapazit|мощност|容量|出力|قدرة|装机|兆瓦|千瓦", r"装机|兆瓦|千瓦|MW|GW|吉瓦"),
    "length": (r"length|longueur|longitud|länge|протяж|длин|長さ|全長|طول|全长|公里", r"公里|千米|km"),
    "money": (r"cost|invest|coût|costo|inversión|kosten|investition|стоимост|инвестиц|費用|投資|تكلفة|استثمار|投资|美元|资金",
              r"美元|元|欧元"),
}


@dataclasses.dataclass
class Scope:
    nodes: list[dict]  # table-of-contents nodes the question names, most specific first
    entries: list[dict]  # catalogue entries the question names
    places: list[places.Place]
    years: list[int]
    types: list[str]  # keys of TYPE_WORDS
    attributes: list[str]  # keys of ATTRIBUTES
    topic: dict | None = None  # the section whose titles (its own, its subsections') best match the question
    whole: bool = False  # asks about the report as a whole

    @property
    def empty(self) -> bool:
        return not (self.nodes or self.entries or self.places or self.years or self.types)


def stems(text: str) -> set[str]:
    return {w[:STEM] for w in WORD_RE.findall(fold(text)) if len(w) >= 3}


class ScopeReader:
    """Resolves questions against one structure; built once per pipeline."""

    def __init__(self, structure: dict):
        self.toc = structure["toc"]
        self.catalogue = structure["catalogue"]
        named = [e for e in self.catalogue if e["type"] != "event"]  # events are found by their year
        counts = Counter(w for e in named for w in set(_words(e["en"])))
        place_words = {w for p in places.PLACES for w in _words(p.en)}
        sections = [n for n in self.toc if n["kind"] == "section" and not n["id"].startswith("h-a")]
        self._titles = [(n, set().union(_title_terms(n), *(_title_terms(c) for c in self.toc
                                                           if c["parent"] == n["id"] and c["kind"] == "subsection")))
                        for n in sections]
        title_counts = Counter(t for _, terms in self._titles for t in terms)
        self._weights = {t: math.log(len(self._titles) / c) for t, c in title_counts.items()}
        self._keys = [(e, zh_keys(e), {w[:STEM] for w in _words(e["en"])},
                       {w for w in _words(e["en"]) if counts[w] <= 2 and len(w) >= 4
                        and w not in place_words}, _abbreviation(e))
                      for e in named]

    def resolve(self, question: str) -> Scope:
        plain = QUOTES_RE.sub("", question)
        folded = fold(question)
        return Scope(self._nodes(plain, folded), self._entries(question, plain), places.find_in_question(question),
                     sorted({int(y) for y in YEAR_RE.findall(question)}),
                     [t for t, p in TYPE_WORDS.items() if re.search(fold(p), folded)],
                     [a for a, (p, _) in ATTRIBUTES.items() if re.search(fold(p), folded)],
                     self._topic(question), bool(re.search(fold(WHOLE_REPORT), folded)))

    def _topic(self, question: str) -> dict | None:
        """The title sharing the most weight of rare terms (word stems, Han bigrams) with the question, when
        at least two terms are shared and no other title comes close."""
        asked = terms(question)
        scored = sorted(((sum(self._weights[t] for t in terms & asked), len(terms & asked), n)
                         for n, terms in self._titles), key=lambda x: -x[0])
        if not scored or scored[0][1] < 2:
            return None
        best, runner = scored[0], scored[1] if len(scored) > 1 else (0, 0, None)
        return best[2] if best[0] >= TOPIC_MARGIN * runner[0] else None

    def _nodes(self, plain: str, folded: str) -> list[dict]:
        named = [n for n in self.toc if n["kind"] in ("section", "subsection", "box")
                 and len(title := strip_numbering(n["zh"])) >= 4 and title in plain]
        named += [n for n in self.toc if n["id"] in PART_WORDS and re.search(PART_WORDS[n["id"]], folded)]
        return sorted(named, key=lambda n: -n["level"])

    def _entries(self, question: str, plain: str) -> list[dict]:
        question_stems = stems(question)
        proper = {fold(w) for w in re.findall(r"(?<=\s)[A-ZÀ-ÖØ-Þ][\w'-]+", question)}  # capitalised, not first
        found = []
        for entry, zh_keys, name_stems, rare, abbreviation in self._keys:
            if (any(k in plain for k in zh_keys)
                    or (len(name_stems) >= 2 and name_stems <= question_stems)
                    or (rare & proper)
                    or (abbreviation and re.search(rf"\b{abbreviation}\b", question))):
                found.append(entry)
        # an entry named as part of a longer one that is also found (卡洛特水电站 in 巴基斯坦卡洛特水电站项目)
        return [e for e in found if not any(o is not e and e["zh"] in o["zh"] for o in found)]


def terms(text: str) -> set[str]:
    """Word stems of Latin-script text and bigrams of Han text, for matching titles."""
    han = re.sub(r"[^\u4e00-\u9fff]+", " ", text)
    bigrams = {w[i:i + 2] for w in han.split() for i in range(len(w) - 1)}
    stems_in_order = [w[:STEM] for w in _words(text) if len(w) >= 4]
    pairs = {f"{a}+{b}" for a, b in zip(stems_in_order, stems_in_order[1:])}  # "green energy" as a phrase
    return set(stems_in_order) | pairs | (bigrams - HAN_COMMON)


def _title_terms(node: dict) -> set[str]:
    return terms(strip_numbering(node["en"])) | terms(strip_numbering(node["zh"]))


def _words(english: str) -> list[str]:
    return [w for w in WORD_RE.findall(fold(english)) if w not in STOP]


def _abbreviation(entry: dict) -> str:
    """The glossary note when it is just the entry's abbreviation ("UNEP", "GIP"), else ""."""
    note = entry.get("note", "").strip()
    return note if ABBREVIATION_RE.fullmatch(note) and len(note) >= 3 else ""


def zh_keys(entry: dict) -> list[str]:
    """The Chinese name, and its core without a leading place and a trailing 项目 (卡洛特水电站)."""
    name = QUOTES_RE.sub("", entry["zh"])
    core = re.sub(r"项目$", "", name)
    for place in places.find_zh(core):
        if core.startswith(place.zh):
            core = core[len(place.zh):]
    return [k for k in {name, core} if len(k) >= 3]

"""What a question asks for: the kind of value (a count of what, money, energy, capacity, a date …).

The answer checks hold a number to the thing it counts (rag/units.py); this module gives the other
side: "中老铁路全线共有多少座隧道？" asks a count of 隧道, "What is the total investment?" asks money,
"Quelle est la puissance installée ?" asks power. When no evidence sentence states a value of the asked
kind, the report does not answer the question, however close its sentences are in meaning.

Patterns cover the eight languages of our users; a question that matches none asks for no particular
kind (a reason, a name, a description) and is judged by the evidence score alone.
"""
from __future__ import annotations

import dataclasses
import re

from rag import units
from rag.units import CN_COUNTERS

# Checked in order: the first kind whose pattern matches is the asked kind. Question words ("when",
# "哪一年") come before topical words: "When were the Guidelines on Investment issued?" asks a date.
ASKED_KINDS: list[tuple[str, re.Pattern]] = [(kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in [
    ("percent", r"百分之几|百分之多少|百分比|比例|占比|多少%|what (?:percentage|share|proportion)|how many percent|"
                r"quel(?:le)? (?:pourcentage|part|proportion)|qué (?:porcentaje|proporción)|wie viel Prozent|"
                r"welchen Anteil|какой процент|какая доля|ما نسبة|何パーセント|割合"),
    ("date", r"何时|哪一?年|哪一?天|几月|什么时候|\bwhen\b|what (?:year|date|month)|which (?:year|month|date)|"
             r"\bquand\b|quelle (?:année|date)|cuándo|en qué (?:año|fecha)|\bwann\b|in welchem Jahr|"
             r"когда|в каком году|متى|في أي عام|いつ|何年"),
    ("org", r"哪家|哪个(?:机构|组织|部门|单位|企业|公司)|由谁|which (?:[a-z]+ ){0,2}(?:company|companies|firm|enterprise|"
            r"institution|organi[sz]ation|bank|university)|who (?:built|set up|established|founded|financed|runs)|"
            r"quel(?:le)? (?:entreprise|société|institution|organisation|organisme)|qué (?:empresa|institución|organización)|"
            r"welche[rsn]? (?:Firma|Unternehmen|Institution|Organisation|Einrichtung)|как(?:ая|ой) (?:компани|организаци|институт)|"
            r"أي (?:شركة|مؤسسة)|どの(?:企業|会社|機関)"),
    ("place", r"哪个(?:省|市|城市|国家|府|州|地区)|哪座城市|在哪里|位于哪|which (?:province|city|country|region|state)|"
              r"in which (?:city|country|province)|where (?:is|was|are|were)|dans quel(?:le)? (?:ville|pays|province)|"
              r"en qué (?:ciudad|país|provincia)|in welche[rm] (?:Stadt|Land|Provinz)|в каком (?:городе|регионе)|"
              r"в какой (?:стране|провинции)|في أي (?:مدينة|بلد|دولة)|どこ"),
    ("energy", r"发电量|发电多少|多少电|多少度电|千瓦时|electricity (?:does|did|will|is|was|would)|"
               r"how much (?:clean )?(?:electricity|power) .*(?:generat|produc)|annual (?:generation|output)|"
               r"kWh|combien d'électricité|production (?:annuelle )?d'électricité|cuánta electricidad|"
               r"wie viel Strom|Stromerzeugung|сколько электроэнерги|выработ|كم من الكهرباء|発電量"),
    ("power", r"装机容量|装机规模|装机|installed capacity|generating capacity|capacity of the|"
              r"puissance(?: installée)?|capacidad(?: instalada)?|installierte Leistung|Leistung|Kapazität|"
              r"установленн[а-я]* мощност|мощност[ьи]|القدرة المركبة|قدرة|設備容量|出力"),
    ("money", r"总投资|投资额|投资了?多少|投资规模|(?<!装机)规模(?:是|为|有)?多(?:少|大)|融资额|贷款额|金额|造价|多少钱|多少美元|多少元|"
              r"how much (?:money|did .{0,80}(?:invest|cost|spend))|how much .{0,30}(?:investment|funding|financing)|"
              r"\b(?:tariffs?|prices?)\b|电价|价格|\btarifs?\b|\bprix\b|\btarifa|\bprecio|\bPreis|\bTarif|тариф|\bцен[аыу]\b|"
              r"what (?:was|is) the (?:total )?(?:investment|cost|value|amount)|montant|combien .{0,30}(?:coût|investi)|"
              r"coût|cuánto .{0,30}(?:invirti|cost)|inversión total|wie viel .{0,30}(?:investiert|gekostet|kostet)|"
              r"Investitionssumme|Kosten|сколько .{0,30}(?:инвест|стоил|стоит)|объ[её]м инвестиций|стоимост|"
              r"كم .{0,30}(?:استثمر|تكلفة|كلف)|投資額|費用"),
    ("mass", r"多少吨|减排量|减少.*排放|排放量|how many (?:tonnes|tons)|tonnes of|emissions? (?:reduc|cut|avoid)|"
             r"combien de tonnes|cuántas toneladas|wie viele Tonnen|сколько тонн|كم طن|何トン"),
    ("length", r"多长|长度|全长|多少公里|how long is|how many kilomet|length|longueur|longitud|Länge|"
               r"какова длина|протяж[её]нност|طول|長さ|全長"),
    ("area", r"面积|多少公顷|多大面积|how (?:large|big) an area|what area|hectares|superficie|Fläche|"
             r"площад|مساحة|面積"),
    ("people", r"多少人|多少名|人口|how many (?:people|residents|persons|trainees|officials|participants)|"
               r"combien de personnes|cuántas personas|wie viele Menschen|сколько человек|كم عدد الأشخاص|何人"),
    ("count", rf"多少[{CN_COUNTERS}]|几[{CN_COUNTERS}]|多少|how many|combien|cuánt[oa]s|wie viele|сколько|كم عدد|"
              r"何(?:人|名|台|基|個|か所)|いくつ"),
]]
_ZH_COUNT_NOUN = re.compile(rf"(?:多少|几)(?:[{CN_COUNTERS}])([\u4e00-\u9fff]{{2,4}})")
_EN_COUNT_NOUN = re.compile(r"how many ((?:[a-z-]+ ){0,2}?[a-z-]+?)(?:\s+(?:are|is|were|was|did|do|does|has|have|had|will|would|can|in|of|on|at|for|does)\b|[?,.]|$)",
                            re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Asked:
    kind: str | None  # None: no particular kind of value (a reason, a description); "org"/"place": a name
    noun: str = ""  # for a count: what is counted ("隧道", "tunnel"), when the question says it

    def held_by(self, measure: units.Measure) -> bool:
        """The measure is a value of the asked kind (and, for a count, of the asked noun)."""
        kind = measure.kind.split(":")[0]
        if self.kind == "date":
            return kind in ("year", "month", "date")
        if self.kind == "count":
            return kind in ("count", "people", "number") and units.same_noun(self.noun, measure.noun)
        if self.kind == "people":
            return kind in ("people", "count", "number")
        if self.kind == "percent":
            return kind == "percent"
        return kind == self.kind


def asked(question: str) -> Asked:
    for kind, pattern in ASKED_KINDS:
        if pattern.search(question):
            return Asked(kind, _count_noun(question) if kind == "count" else "")
    return Asked(None)


def _count_noun(question: str) -> str:
    match = _ZH_COUNT_NOUN.search(question)
    if match:
        return match.group(1)
    match = _EN_COUNT_NOUN.search(question)
    if match:
        return " ".join(units.stem(w) for w in match.group(1).split())
    return ""


# Continents and regions: a question may place a project in "Europe" where the passage names only the
# country ("比亚迪在欧洲的第一座工厂" — the passage says Hungary).
REGIONS = re.compile(r"[洲]|拉美|东南亚|中东|中亚|西亚|南亚|东亚|北非|东非|西非|南非洲|太平洋|大西洋|印度洋|地中海|湄公河|澜湄")


def missing_names(question: str, language: str, context: str) -> list[str]:
    """Place names of a Chinese question that the retrieved passages never mention.

    "九安风电项目位于泰国哪个府？": the passage puts Cuu An in Vietnam, so 泰国 is missing and the premise
    is not the report's; "柬埔寨…低碳示范区…多少吨" retrieves only Laos's figure. Only Chinese questions,
    whose place names are the report's own: an English reader may use a name our edition does not
    ("Tsingshan" for IMIP), and a missing alias must not refuse a question the report answers. Dev: no
    answerable question lost a name this way.
    """
    if language != "zh":
        return []
    import jieba.posseg

    names = [w for w, flag in jieba.posseg.lcut(question)
             if flag == "ns" and len(w) >= 2 and not REGIONS.search(w)]
    return [n for n in names if n not in context]


# An event the question takes for granted that ends or undoes something ("why was it closed?", "¿por qué
# dejó de generar?"). The report describes projects that run; when its passages never speak of such an
# event, the question's premise is not the report's.
ENDING_ASKED = re.compile(
    r"关闭|停止|停运|停产|终止|取消|暂停|叫停|撤出|退出|中断|失败|stop|clos(?:e|ed|ure|ing)|shut|cancel|terminat|suspend|"
    r"halt|withdr|ceas|abandon|fail|ferm(?:é|er|eture)|arrêt|annul|dej(?:ó|aron) de|cerr|suspend|cancel|"
    r"eingestellt|geschlossen|gestoppt|abgebrochen|прекрат|закры|останов|отмен|توقف|أغلق|إلغاء|閉鎖|停止|中止",
    re.IGNORECASE)
ENDING_IN_REPORT = re.compile(
    r"关闭|停止|停运|停产|终止|取消|暂停|叫停|撤出|退出|中断|失败|stop|clos(?:e|ed|ure|ing)|shut|cancel|terminat|"
    r"suspend|halt|withdr|ceas|abandon|fail", re.IGNORECASE)


def ending_premise_missing(question: str, context: str) -> bool:
    """The question presupposes something ended, stopped or failed, and the passages say nothing of it."""
    return bool(ENDING_ASKED.search(question)) and not ENDING_IN_REPORT.search(context)


def years_tied_elsewhere(question: str, names_zh: list[str], report_names: list[str],
                         sentences_zh: list[str]) -> list[int]:
    """Years the question ties to a named thing that the passages tie to another thing: "carbon neutrality
    before 2030?" where the passage says "2030年前实现碳达峰、2060年前实现碳中和" (2030 is the peak's year).

    ``names_zh``: the report's (glossary) names the question gives, in Chinese; ``report_names``: all of
    them. A year counts as tied elsewhere when, in an evidence sentence, its clause names another of the
    report's things and none of the question's, while another year's clause (a year the question does not
    give) names one of the question's. A clause naming nothing ("截至2023年11月，成员国已达到33个") ties the
    year to nothing else."""
    from rag.numbers import extract_numbers

    asked_years = {int(q.value) for q in extract_numbers(question) if q.kind == "year"}
    if not asked_years or not names_zh:
        return []
    others_named = [n for n in report_names if n and not any(n in asked or asked in n for asked in names_zh)]

    def clause(text: str, year, spans) -> str:
        return units.clause_around(text, year.span, [s for s in spans if s != year.span])

    tied = set()
    for text in sentences_zh:
        years = [q for q in extract_numbers(text) if q.kind == "year"]
        spans = [q.span for q in years]
        for asked_year in asked_years:
            mine = [clause(text, q, spans) for q in years if int(q.value) == asked_year]
            theirs = [clause(text, q, spans) for q in years if int(q.value) not in asked_years]
            elsewhere = mine and all(not any(n in c for n in names_zh) and any(n in c for n in others_named)
                                     for c in mine)
            if elsewhere and any(any(n in c for n in names_zh) for c in theirs):
                tied.add(asked_year)
    return sorted(tied)


NAME_KINDS = ("org", "place")
ORG_SUFFIX = re.compile(r"(?:公司|集团|银行|大学|学院|研究院|研究所|研究中心|协会|基金会|委员会|署|部|局|厅|联盟)$")


PROVINCE_ASKED = re.compile(r"省|province|provincia|Provinz|провинци|مقاطعة|州", re.IGNORECASE)


def names_in(text_zh: str, kind: str) -> set[str]:
    """Proper names of an organisation or a place in a Chinese sentence (jieba's nt/ns tags, organisation
    suffixes). "由中国企业承建" names no company: 中国 is a place, 企业 a common noun."""
    import jieba.posseg

    found = set()
    for word, flag in jieba.posseg.lcut(text_zh):
        if kind == "org" and len(word) >= 3 and (flag == "nt" or ORG_SUFFIX.search(word)):
            found.add(word)
        elif kind == "place" and flag == "ns" and len(word) >= 2 and word not in ("中国", "中方"):
            found.add(word)
    return found

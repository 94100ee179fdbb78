"""What a number counts: its unit, its quantity kind and, for a count, the noun it counts.

rag/numbers.py gives every quantity a value ("72 万" → 720000); this module reads the words around it,
so that a number is only taken as support for a claim when the evidence uses it for the same thing:
- the unit and its kind, normalised to one base unit per kind: 72 万千瓦 = 720,000 kW = 720 MW
  (power, in kW); 7.11 亿千瓦时 = 711 million kWh (energy); 500 万人口 is people, never 500 万立方米;
- a month or a day is never a count: "12月" does not support "12家";
- the counted noun: "沉淀池 157 座" counts sedimentation tanks, so it does not support "157座隧道".

Measured failures of the unseen-question run this guards against are the tests of tests/test_units.py.
"""
from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

from rag import numbers
from rag.numbers import CN_COUNTERS as NUMERAL_COUNTERS, Quantity

# (pattern right after the number, kind, factor to the kind's base unit). Longest first per language;
# the base units are kWh, kW, tonnes, m³, hectares, km, the currency itself, people, times.
_UNITS_AFTER: list[tuple[str, str, float]] = [
    (r"太瓦时|TWh|terawatt[- ]hours?", "energy", 1e9), (r"吉瓦时|GWh|gigawatt[- ]hours?", "energy", 1e6),
    (r"兆瓦时|MWh|megawatt[- ]hours?", "energy", 1e3), (r"千瓦时|度电|度(?![假过数])|kWh|kilowatt[- ]hours?|kilowattheures?|kilovatios?[- ]hora|Kilowattstunden?|кВт[·⋅ ]?ч", "energy", 1),
    (r"太瓦|TW|terawatts?|тераватт", "power", 1e9), (r"吉瓦|GW|gigawatts?|гигаватт", "power", 1e6),
    (r"兆瓦|MW|m[eé]gawatts?|megavatios?|мегаватт[а-я]*|ميغاواط", "power", 1e3), (r"千瓦|kW|kilowatts?|kilovatios?|киловатт[а-я]*", "power", 1),
    (r"万吨", "mass", 1e4), (r"吨|公吨|tonnes?|tons?|t(?![a-zA-Z])|toneladas?|Tonnen?|тонн[а-я]*|طن", "mass", 1),
    (r"千克|公斤|kg|kilogram(?:me)?s?", "mass", 1e-3),
    (r"立方米|m3|m³|cubic met(?:re|er)s?|mètres cubes|metros cúbicos|Kubikmeter|кубическ[а-я]* метр[а-я]*", "volume", 1),
    (r"平方公里|平方千米|km2|km²|square kilomet(?:re|er)s?", "area", 100),
    (r"公顷|hectares?|ha(?![a-zA-Z])|Hektar|гектар[а-я]*", "area", 1), (r"亩", "area", 1 / 15),
    (r"平方米|m2|m²|square met(?:re|er)s?", "area", 1e-4),
    (r"公里|千米|km|kilomet(?:re|er)s?|kilomètres?|kilómetros?|Kilometer|километр[а-я]*|كيلومتر", "length", 1),
    (r"米|met(?:re|er)s?(?! cub)|mètres?(?! cub)|metros?(?! cúb)|Meter(?!n? ?Kubik)|метр[а-я]*", "length", 1e-3),
    (r"美元|US dollars?|dollars?|USD|dólares|dollars américains|US-Dollar|доллар[а-я]*|دولار", "money:USD", 1),
    (r"亿元|元人民币|元|人民币|yuan|RMB|CNY|юан[а-я]*", "money:CNY", 1),
    (r"欧元|euros?|EUR|Euro", "money:EUR", 1),
    (r"人次|人口|名|人|people|persons?|residents?|inhabitants?|trainees?|officials?|participants?|personnes|"
     r"habitants|personas|Menschen|Einwohner|Personen|человек|жител[а-я]*|شخص", "people", 1),
    (r"倍|times|fois|veces|[Mm]al|раз[а]?", "times", 1),
    (r"个月|months?|mois|meses|Monate?n?|месяц[а-я]*", "months", 1),
]
# A currency written before the number: US$41 billion, $5 million, RMB 20 yuan.
_UNITS_BEFORE: list[tuple[str, str]] = [(r"US\$|\$|USD", "money:USD"), (r"RMB|CNY|¥|￥", "money:CNY"),
                                        (r"€|EUR", "money:EUR")]
_AFTER_RES = [(re.compile(rf"^\s?(?:{pattern})", re.IGNORECASE), kind, factor) for pattern, kind, factor in _UNITS_AFTER]
_NAMED_RES = [(re.compile(rf"(?<![A-Za-z])(?:{pattern})", re.IGNORECASE), kind) for pattern, kind, _ in _UNITS_AFTER]
_BEFORE_RES = [(re.compile(rf"(?:{pattern})\s?$"), kind) for pattern, kind in _UNITS_BEFORE]
_ZH_ENTITY_RE = re.compile(r"[\u4e00-\u9fff]{2,}")
_EN_WORD_RE = re.compile(r"[A-Za-zÀ-ÿ]{3,}")
# Words next to a number that say nothing about what it counts.
_EN_FILLER = frozenset("the a an of and or about around over more than nearly almost some total than "
                       "approximately roughly some least up to into with for per year years annual "
                       "annually each every its their new additional".split())
_ZH_FILLER = "共约近超过达到已累计总计合计新增设置有为是余多逾将近等其中全线每年年均"
# 第二, 首 (批), second, 21st: a rank, not an amount.
ORDINAL_RE = re.compile(r"^[第首]|(?:st|nd|rd|th)$|^(?:first|second|third|fourth|fifth|sixth|seventh|eighth|"
                        r"ninth|tenth|[a-z]+(?:ieth|teenth))$", re.IGNORECASE)
ZH_NOUN_CHARS = 8  # a Chinese counted noun phrase, modifiers and head ("零排放纯电动大巴")
CLAUSE_BREAK = re.compile(r"[，；;。！？!?：:（）()、]|,(?!\d{3})|(?<!\d)\.(?!\d)")


@dataclasses.dataclass(frozen=True)
class Measure:
    quantity: Quantity
    kind: str  # energy, power, mass, volume, area, length, money:XXX, people, times, months, percent,
    # year, month, date, count (a number with a counter or a noun), number (nothing known)
    base: float  # the value in the kind's base unit
    noun: str  # the counted noun for a count ("隧道", "tunnel"), else ""
    unit: str = ""  # the unit as written after the number ("吨", " kWh"), for showing a result


# Measure words after a number: numbers.py's (which decide whether a Chinese numeral is a quantity) and
# those that only ever follow one (只 for animals, 头, 匹, 枚).
CN_COUNTERS = NUMERAL_COUNTERS + "只头匹枚"
_COUNTER_AFTER = re.compile(rf"\s?[余多]?[{CN_COUNTERS}]")
_APPROX_AFTER = re.compile(r"^\s?[余多]")  # 3000余名, 150多万: "more than" before the unit


def _unit_after(text: str, end: int) -> tuple[str, float, int] | None:
    approx = _APPROX_AFTER.match(text[end:end + 2])
    end += approx.end() if approx else 0
    rest = text[end:end + 40]
    for pattern, kind, factor in _AFTER_RES:
        match = pattern.match(rest)
        if match:
            return kind, factor, end + match.end()
    return None


def _unit_before(text: str, start: int) -> str | None:
    before = text[max(0, start - 5):start]
    for pattern, kind in _BEFORE_RES:
        if pattern.search(before):
            return kind
    return None


def named_unit_kinds(text: str) -> set[str]:
    """Kinds of the units a text names anywhere ("每隔多少公里" → {"length"})."""
    found = [(m.start(), m.end(), kind) for pattern, kind in _NAMED_RES for m in pattern.finditer(text)]
    # "kW" inside "kWh", 千瓦 inside 千瓦时: a unit inside a longer one is not named
    return {kind for start, end, kind in found
            if not any(s <= start and end <= e and (e - s) > (end - start) for s, e, _ in found)}


def stem(word: str) -> str:
    word = word.lower()
    for suffix in ("ies", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def clause_around(text: str, span: tuple[int, int], others: list[tuple[int, int]] = ()) -> str:
    """The clause a number stands in, cut at the numbers beside it: what it is the value of.

    "为120多个发展中国家培训3000余名官员" gives 3000 the words "培训3000余名官员" and 120 "为120多个发展中国家培训".
    """
    before, after = _clause(text, *span)
    start, end = span[0] - len(before), span[1] + len(after)
    for other_start, other_end in others:
        if start <= other_end <= span[0]:
            start = other_end
        if span[1] <= other_start <= end:
            end = other_start
    return text[start:end]


def _clause(text: str, start: int, end: int) -> tuple[str, str]:
    """The text of the number's clause before and after it."""
    before = CLAUSE_BREAK.split(text[:start])[-1]
    after = CLAUSE_BREAK.split(text[end:])[0]
    return before, after


def counted_noun(text: str, start: int, end: int) -> str:
    """The noun a count is about: after its counter ("157座隧道" → 隧道, "157 tunnels" → tunnel), else
    the nearest noun before it in the clause ("沉淀池 157 座" → 沉淀池)."""
    before, after = _clause(text, start, end)
    after = after.lstrip().lstrip("余多")
    if after[:1] and after[0] in CN_COUNTERS:
        match = _ZH_ENTITY_RE.match(after[1:].lstrip())
        if match:  # the whole noun phrase: its head comes last ("400辆零排放纯电动大巴" counts 大巴)
            return re.split(r"[的和与及]", match.group())[0][:ZH_NOUN_CHARS]
    words = [w for w in _EN_WORD_RE.findall(after)[:3] if w.lower() not in _EN_FILLER]
    if words and re.match(r"^\s*[A-Za-zÀ-ÿ]", after):
        return " ".join(stem(w) for w in words)
    zh_before = _ZH_ENTITY_RE.findall(before.rstrip(_ZH_FILLER + " "))
    if zh_before:
        return zh_before[-1][-3:]
    en_before = [w for w in _EN_WORD_RE.findall(before) if w.lower() not in _EN_FILLER]
    return " ".join(stem(w) for w in en_before[-2:])


def measures(text: str) -> list[Measure]:
    """Every quantity of ``text`` with its unit kind, base value and (for counts) counted noun."""
    out = []
    for quantity in numbers.extract_numbers(text):
        start, end = quantity.span
        kind, base, noun, written = quantity.kind, quantity.value, "", ""
        if kind == "number" and ORDINAL_RE.search(quantity.text):
            kind = "ordinal"
        if kind == "number":
            unit = _unit_after(text, end)
            currency = _unit_before(text, start)
            if unit:
                kind, factor, unit_end = unit
                base = float(Decimal(str(quantity.value)) * Decimal(str(factor)))
                written = text[end:unit_end]
            elif currency:
                kind = currency
            elif re.match(rf"^\s?[余多]?[{CN_COUNTERS}]", text[end:end + 3]) or _EN_WORD_RE.match(text[end:].lstrip()):
                kind = "count"
            if kind in ("count", "people", "number"):
                noun = counted_noun(text, start, end)
                counter = _COUNTER_AFTER.match(text, end)
                written = written or (counter.group() if counter else "")  # "400辆…", "海龟超1.7万只": 辆, 只
        out.append(Measure(quantity, kind, base, noun, written))
    return out


def same_noun(a: str, b: str) -> bool:
    """Two counted nouns name the same thing: one's first word (Chinese: first two characters) is in
    the other. "large tunnels" and "tunnels" agree; "industry standards" and "national standards",
    行业标准 and 国家标准, 隧道 and 沉淀池 do not; nouns in different languages never agree."""
    if not a or not b:
        return True  # nothing to compare: the value and kind decide
    zh_a, zh_b = bool(_ZH_ENTITY_RE.match(a)), bool(_ZH_ENTITY_RE.match(b))
    if zh_a != zh_b:
        return False
    if zh_a:  # one's first word in the other: 大巴 is in 零排放纯电动大巴; 行业标准 and 国家标准 share none
        return a[:2] in b or b[:2] in a
    words_a, words_b = a.split(), b.split()
    return words_a[0] in words_b or words_b[0] in words_a


def compatible(claim: Measure, source: Measure) -> bool:
    """The source states the claim's number for the same kind of thing."""
    if claim.kind in ("month", "date") or source.kind in ("month", "date"):
        return claim.kind == source.kind and numbers.same_value(claim.quantity.value, source.quantity.value)
    if claim.kind == "year" or source.kind == "year":
        return claim.kind == source.kind == "year" and claim.quantity.value == source.quantity.value
    loose = ("number",)  # a bare number claims no unit; a unit-less source number is matched by value
    if claim.kind not in loose and source.kind not in loose and claim.kind != source.kind:
        if not {claim.kind, source.kind} <= {"count", "people"}:
            return False
    same = numbers.same_value(claim.base, source.base) if claim.kind == source.kind else numbers.same_value(
        claim.quantity.value, source.quantity.value)
    return same and same_noun(claim.noun, source.noun)


def unsupported(claim: str, evidence: list[str], nouns: bool = True) -> list[Measure]:
    """Quantities of ``claim`` that no evidence text states for the same kind of thing.

    ``nouns=False`` compares units and values only: for claims in a language other than the
    evidence's (Chinese and English), whose nouns cannot be compared word by word.
    """
    return unsupported_measures(measures(claim), [m for text in evidence for m in measures(text)], nouns)


def unsupported_measures(claims: list[Measure], sources: list[Measure], nouns: bool = True) -> list[Measure]:
    """``unsupported`` on measures already read (the index's sentences are read once per corpus)."""
    if not nouns:
        claims = [dataclasses.replace(m, noun="") for m in claims]
    return [m for m in claims if not any(compatible(m, s) for s in sources)]

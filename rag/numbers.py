"""Value-normalising number extraction, shared by the corpus checks and the answer checks.

``extract_numbers`` finds the quantities written in a text and gives each its *value*, so that the
same quantity written in different languages compares equal: ``28.3 亿吨`` and ``2.83 billion tonnes``
both have the value 2.83e9, ``700万`` and ``7 million`` both 7e6, ``2023年11月`` and ``November 2023``
both give 2023 and 11. Comparison is by value only (``same_value``); the ``kind`` is informational.

Kinds
    ``number``   cardinals and ordinals (1,234 · 1.1万 · 八项 · 第七十六届 · seventy-sixth · 76th)
    ``percent``  41% · 41 % · 41 percent · 百分之四十一 (value 41.0, not 0.41; 5‰ → 0.5)
    ``year``     2023年 · a bare 4-digit 1800–2199 · 1970s · 20世纪70年代 (= 1970)
    ``month``    11月 · 十一月 · November / Nov · novembre · noviembre · ноября … (value 1–12)
    ``date``     a day of the month: 15日 · 15 May · May 15th (value 1–31)

What is recognised
    * Arabic numerals, also Arabic-Indic (٠–٩), Persian, full-width and other Unicode decimal digits.
      Separators: ``11,000`` (comma groups of exactly three digits), ``1 000`` (space, no-break or thin
      space groups of three after a 1–3 digit lead), ``1.500.000`` and ``1.500,5`` (European style:
      dots are thousands separators only when unambiguous, i.e. two or more dot groups or a decimal
      comma after them). A single ``11.000`` is the decimal 11.0. A comma followed by other than
      three digits (``2,83``) is a decimal comma.
    * Chinese magnitudes after Arabic or Chinese numerals: 万 (1e4), 亿 (1e8), 万亿 (1e12), 百万,
      千万, also the traditional/Japanese 萬 and 億; ``余``/``多`` may stand before or after
      (1.1万余名 → 11000, 150多万 → 1.5e6).
      ``千`` is *not* a magnitude after Arabic numerals (``72 万千瓦`` is 720000 kW).
    * Chinese numerals (一 二 两 三 … 十 百 千 万 亿, 〇/零) only where they are certainly numbers:
      preceded by 第 (ordinal), followed (optionally after 多/余/来) by a counter from ``CN_COUNTERS``,
      containing 万/亿, or followed by 月 (month), 日 after a month (date) or 年 (a year when written
      digit by digit, 二〇二三年; otherwise a count, 十年). A lone 一 before a counter (一个, 一批,
      一项) is the indefinite article and a lone 零 (零部件, 零排放) is no count: neither is
      extracted; a few idioms (``CN_IDIOMS``: 百年未有之大变局 …) are skipped. 首 + counter (首届,
      首个, 首批) is the ordinal 1. 百分之 + numeral is a percentage.
    * English scale words after a numeral: thousand, million, billion (= 1e9, short scale), trillion,
      bn/mn; French/Spanish/German/Russian/Italian/Portuguese/Arabic ones: milliard(s), mil millones,
      Milliarde(n), Million(en), Mio./Mrd., млрд, млн, тыс, трлн, миллиард…, مليار (1e9 for "milliard"
      forms). The long-scale words that are distinct from English (Spanish billón/billones, German
      Billionen) are 1e12; "billion(s)"/"Billion" is always read as the English 1e9 (the text's
      language is not detected).
    * English number words one…nineteen, twenty…ninety, hundred, thousand, million …, dozen, "a
      hundred"/"a million", and ordinals first…twentieth, thirtieth…ninetieth, hundredth, compounds
      (seventy-sixth, one hundred and fifty); ordinals in digits (1st, 2nd, 76th, 21st). "one" is skipped
      in "one of", "one another", "no one", "each one" …, where it is not a quantity.
    * Month names (English, French, Spanish, German, Russian). Ambiguous short forms (May, Mar, Jan,
      mars, mai …) count only next to a number ("May 2017", "15 May").

What is deliberately not extracted
    * digits glued to a preceding Latin letter, i.e. codes and formulas such as CO2, PM2.5, CH4, b1,
      A320; except currency codes (RMB20, US$41) and codes whose number is a count or standard
      number written out elsewhere (G20 = 二十国集团, COP15, SDG 7, ISO14001; ``_COUNT_CODES``);
    * the passage ids this project cites (``p-1-2-1-b1-1-001``, ``h-1-2``);
    * signs: ``2019-2022`` is two years, not a negative number.
"""
from __future__ import annotations

import dataclasses
import math
import re
import unicodedata
from decimal import Decimal, InvalidOperation

__all__ = ["Quantity", "extract_numbers", "same_value", "values", "unsupported_numbers",
           "CN_COUNTERS", "CN_IDIOMS"]


@dataclasses.dataclass(frozen=True)
class Quantity:
    value: float  # normalised value: 28.3亿 → 2.83e9, 1.1万 → 11000, "41%" → 41.0
    text: str  # the matched surface text
    kind: str  # "number" | "percent" | "year" | "month" | "date"
    span: tuple[int, int]  # character span in the input


# ---------------------------------------------------------------------------------------------------
# tables

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
             "八": 8, "九": 9}
CN_UNITS = {"十": 10, "百": 100, "千": 1000}
CN_BIG = {"万": 10**4, "亿": 10**8}
# Counters (measure words) and units after which a Chinese numeral is certainly a quantity. Single
# characters; "方" (三方合作 = tripartite) and "道"/"步"/"体" (一道, 进一步, 一体) are deliberately absent.
CN_COUNTERS = "个项名届家国次份场批座条颗位种类年天周期轮部件台辆套株棵处所款篇本支架艘对段列倍大岁人组笔门间栋层片张块"
CN_UNIT_WORDS = ("公里", "千米", "千瓦", "吨", "米", "亩", "公顷")
# Set phrases whose numerals are not quantities (their English has no number to match).
CN_IDIOMS = ("百年未有之大变局", "一带一路", "千方百计", "千家万户", "万无一失", "一五一十")
CN_IDIOM_NUMERALS = {"千万", "万万", "亿万", "万"}  # idiomatic/empty without a digit before

CJK_MAGNITUDES = {"万亿": 10**12, "千万": 10**7, "百万": 10**6, "亿": 10**8, "万": 10**4}

# scale words after a numeral (lower-cased key → factor); the regex below is case-insensitive.
SCALE_WORDS = {
    "thousand": 10**3, "thousands": 10**3, "million": 10**6, "millions": 10**6, "mn": 10**6,
    "mln": 10**6, "billion": 10**9, "billions": 10**9, "bn": 10**9, "trillion": 10**12,
    "trillions": 10**12,
    # French
    "mille": 10**3, "milliard": 10**9, "milliards": 10**9,
    # Spanish / Portuguese / Italian
    "mil": 10**3, "mil millones": 10**9, "millón": 10**6, "millon": 10**6, "millones": 10**6,
    "billón": 10**12, "billones": 10**12, "mil milhões": 10**9, "milhão": 10**6, "milhões": 10**6,
    "bilhão": 10**9, "bilhões": 10**9, "mila": 10**3, "milione": 10**6, "milioni": 10**6,
    "miliardo": 10**9, "miliardi": 10**9,
    # German
    "tausend": 10**3, "tsd": 10**3, "tsd.": 10**3, "millionen": 10**6, "mio": 10**6, "mio.": 10**6,
    "milliarde": 10**9, "milliarden": 10**9, "mrd": 10**9, "mrd.": 10**9, "billionen": 10**12,
    # Russian
    "тыс": 10**3, "тыс.": 10**3, "млн": 10**6, "млн.": 10**6, "млрд": 10**9, "млрд.": 10**9,
    "трлн": 10**12, "трлн.": 10**12,
}
# inflected scale words (Russian, Arabic): stem → factor
RU_SCALE_STEMS = {"тысяч": 10**3, "миллион": 10**6, "миллиард": 10**9, "триллион": 10**12}
AR_SCALE_STEMS = {"ألف": 10**3, "آلاف": 10**3, "مليون": 10**6, "ملايين": 10**6, "مليار": 10**9,
                  "تريليون": 10**12}

EN_ONES = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
           "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
           "nineteen": 19}
EN_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
           "eighty": 80, "ninety": 90}
EN_ORD_ONES = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
               "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
               "thirteenth": 13, "fourteenth": 14, "fifteenth": 15, "sixteenth": 16,
               "seventeenth": 17, "eighteenth": 18, "nineteenth": 19}
EN_ORD_TENS = {"twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50, "sixtieth": 60,
               "seventieth": 70, "eightieth": 80, "ninetieth": 90}
EN_SCALES = {"hundred": 100, "thousand": 10**3, "million": 10**6, "billion": 10**9,
             "trillion": 10**12}
EN_ORD_SCALES = {"hundredth": 100, "thousandth": 10**3, "millionth": 10**6}

_MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"]
_MONTHS_EN_ABBR = {"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "Jun": 6, "Jul": 7, "Aug": 8, "Sep": 9,
                   "Sept": 9, "Oct": 10, "Nov": 11, "Dec": 12}
_MONTHS_LOWER = {  # French, Spanish; matched lower-case and capitalised
    "janvier": 1, "février": 2, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6,
    "juillet": 7, "août": 8, "aout": 8, "septembre": 9, "octobre": 10, "novembre": 11,
    "décembre": 12, "decembre": 12,
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
}
_MONTHS_DE = {"Januar": 1, "Jänner": 1, "Februar": 2, "März": 3, "Mai": 5, "Juni": 6, "Juli": 7,
              "Oktober": 10, "Dezember": 12}  # April, August, September, November as in English
_MONTHS_RU_STEMS = {"январ": 1, "феврал": 2, "март": 3, "апрел": 4, "ма": 5, "июн": 6, "июл": 7,
                    "август": 8, "сентябр": 9, "октябр": 10, "ноябр": 11, "декабр": 12}
# Names that are also ordinary words or names: a month only next to a number.
_AMBIGUOUS_MONTHS = {"May", "mars", "Mars", "mai", "Mai", "Jan", "Mar", "Apr", "Jun", "Jul", "Aug",
                     "Sep", "Sept", "Oct", "Nov", "Dec", "Feb"}

# ---------------------------------------------------------------------------------------------------
# regular expressions (applied to the digit-normalised text)

_LATIN_LETTER = r"A-Za-zÀ-ÖØ-öø-ÿ"
_CURRENCY_PREFIX = re.compile(
    r"(?:RMB|CNY|USD|EUR|GBP|JPY|HKD|Rs|Rp|US\$|HK\$|A\$|C\$|S\$|R\$|NZ\$|\$)")
# Codes whose number is a count or an ordinal written out in other languages (G20 = 二十国集团,
# COP15 = 第十五次缔约方大会, SDG 7): extracted despite the glued letters.
_COUNT_CODES = re.compile(r"(?<![A-Za-z])(?:G|COP|SDG|MOP|CMP|CMA|ISO|IEC|GB)[-/]?$")
_PASSAGE_ID = re.compile(r"(?<![\w-])[ph]-(?:\d+|a)(?:-[0-9a-z]+)*(?![\w-])")
_SPACES = " \u00a0\u202f\u2009"
_ARABIC = (
    r"(?<![0-9])(?:"
    r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![0-9]|,\d)"  # 11,000 / 2,830.5
    r"|\d{1,3}(?:\.\d{3})+,\d+(?![0-9])"  # 1.500,5
    r"|\d{1,3}(?:\.\d{3}){2,}(?![0-9]|\.\d)"  # 1.500.000
    rf"|\d{{1,3}}(?:[{_SPACES}]\d{{3}})+(?:[.,]\d+)?(?![0-9]|[.,]\d)"  # 1 000 / 1 000,5
    r"|\d+(?:[.,]\d+)?"  # 11 / 2.83 / 2,83
    r")"
)
_CJK_MAG = "|".join(sorted(CJK_MAGNITUDES, key=len, reverse=True))
_SCALE_RE = (r"(?:" + "|".join(re.escape(w) for w in sorted(SCALE_WORDS, key=len, reverse=True))
             + r"|(?:" + "|".join(RU_SCALE_STEMS) + r")[а-я]*"
             + r"|(?:" + "|".join(AR_SCALE_STEMS) + r")[\u0621-\u064a]*)")
_PERCENT_WORDS = (r"(?:%|％|‰|percent|per\s+cent|pour\s*cent|por\s+ciento|per\s+cento|Prozent"
                  r"|процент[а-я]*)")
NUMBER_RE = re.compile(
    rf"(?P<num>{_ARABIC})"
    rf"(?:\s?(?P<approx>[多余])?(?P<cjkmag>{_CJK_MAG})"
    rf"|[\s-]?(?P<scale>{_SCALE_RE})(?![{_LATIN_LETTER}а-яА-Я]))?"
    rf"(?P<after>\s?(?:{_PERCENT_WORDS}|年代|年(?!代)|月|日|号|世纪"
    rf"|(?:st|nd|rd|th)(?![{_LATIN_LETTER}])|s(?![{_LATIN_LETTER}]))?)",
    re.IGNORECASE,
)
_CN_NUMERAL = "零〇一二两三四五六七八九十百千万亿"
CN_RUN_RE = re.compile(rf"(?P<pre>第|首)?(?P<num>[{_CN_NUMERAL}]+)")
CN_PERCENT_RE = re.compile(rf"百分之(?P<num>[{_CN_NUMERAL}]+(?:点[{_CN_NUMERAL}]+)?|\d+(?:\.\d+)?)")
CN_CENTURY_RE = re.compile(  # 20世纪70年代 = the 1970s
    rf"(?P<c>\d{{1,2}}|[{_CN_NUMERAL}]+)\s?世纪\s?(?P<d>\d0|[一二三四五六七八九]十)\s?年代")
_EN_WORDS = sorted([*EN_ONES, *EN_TENS, *EN_ORD_ONES, *EN_ORD_TENS, *EN_SCALES, *EN_ORD_SCALES,
                    "dozen"], key=len, reverse=True)
EN_WORDS_RE = re.compile(
    r"(?<![\w-])(?:(?:an?)\s+(?=(?:hundred|thousand|million|billion|trillion|dozen)\b))?"
    r"(?:" + "|".join(_EN_WORDS) + r")"
    r"(?:(?:\s+and\s+|\s+|-)(?:" + "|".join(_EN_WORDS) + r"))*(?![\w])"
    rf"(?P<pct>\s?(?:%|percent|per\s+cent)(?![{_LATIN_LETTER}]))?",
    re.IGNORECASE,
)
_MONTH_NAMES: dict[str, int] = {name: i + 1 for i, name in enumerate(_MONTHS_EN)}
_MONTH_NAMES.update(_MONTHS_EN_ABBR)
_MONTH_NAMES.update(_MONTHS_DE)
for _name, _m in _MONTHS_LOWER.items():
    _MONTH_NAMES[_name] = _m
    _MONTH_NAMES[_name.capitalize()] = _m
MONTH_RE = re.compile(
    r"(?<![\w])(?:"
    + "|".join(re.escape(n) for n in sorted(_MONTH_NAMES, key=len, reverse=True))
    + r"|(?P<ru>(?:" + "|".join(sorted(_MONTHS_RU_STEMS, key=len, reverse=True)) + r")(?:[ьяейю]|а|е)?)"
    + r")(?![\w])\.?"
)
_RU_MONTH_WORD = re.compile(r"(?:январ|феврал|апрел|июн|июл|сентябр|октябр|ноябр|декабр)[ьяе]|"
                            r"(?:март|август)[ае]?|ма[йяе]", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------------
# helpers

_TRADITIONAL = {"億": "亿", "萬": "万", "兩": "两"}  # traditional Chinese / Japanese forms


def _normalise_digits(text: str) -> str:
    """Every Unicode decimal digit → ASCII, Arabic separators → , and ., traditional 億/萬/兩 →
    亿/万/两 (one character for one, so spans stay valid)."""
    out = []
    for ch in text:
        if ch.isdecimal() and not ("0" <= ch <= "9"):
            out.append(str(unicodedata.decimal(ch)))
        elif ch == "\u066b":  # Arabic decimal separator
            out.append(".")
        elif ch == "\u066c":  # Arabic thousands separator
            out.append(",")
        elif ch == "％":
            out.append("%")
        elif ch in _TRADITIONAL:
            out.append(_TRADITIONAL[ch])
        else:
            out.append(ch)
    return "".join(out)


def _mask_ids(text: str) -> str:
    return _PASSAGE_ID.sub(lambda m: "#" * len(m.group()), text)


def _arabic_value(raw: str) -> Decimal | None:
    s = "".join(ch for ch in raw if ch not in _SPACES)
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    elif re.fullmatch(r"\d{1,3}(?:\.\d{3})+,\d+", s) or re.fullmatch(r"\d{1,3}(?:\.\d{3}){2,}", s):
        s = s.replace(".", "").replace(",", ".")
    else:
        s = s.replace(",", ".")
    try:
        return Decimal(s)
    except InvalidOperation:
        return None


def cn_numeral_value(text: str) -> int | None:
    """一百 → 100, 七十六 → 76, 两千三百万 → 23000000, 二〇二三 → 2023; None when malformed."""
    if not text:
        return None
    if all(ch in CN_DIGITS for ch in text):  # digit by digit (years) or a single digit
        return int("".join(str(CN_DIGITS[ch]) for ch in text))
    total = section = small = 0
    num: int | None = None
    last_unit = 10**13
    for ch in text:
        if ch in CN_DIGITS:
            if num is not None and num != 0 and CN_DIGITS[ch] != 0:
                return None  # two digits in a row (十四五, 两三个): not one number
            num = CN_DIGITS[ch] if CN_DIGITS[ch] else (num or 0)
        elif ch in CN_UNITS:
            unit = CN_UNITS[ch]
            if unit >= last_unit:
                return None
            last_unit = unit
            small += (num if num else 1) * unit
            num = None
        elif ch == "万":
            if small == 0 and not num:
                return None
            section += (small + (num or 0)) * 10**4
            small, num, last_unit = 0, None, 10**4
        elif ch == "亿":
            if section == 0 and small == 0 and not num:
                return None
            total += (section + small + (num or 0)) * 10**8
            section = small = 0
            num, last_unit = None, 10**8
    return total + section + small + (num or 0)


def _english_words_value(words: list[str]) -> list[tuple[int, int, float, bool]]:
    """Parse number words into (first index, last index, value, is_ordinal) groups, splitting where
    the words do not compose ("two and three", "one two")."""
    groups: list[tuple[int, int, float, bool]] = []
    start: int | None = None
    total = current = 0
    prev = ""  # kind of the previous word: "", ones, teen, tens, hundred, scale, ord
    ordinal = False

    def close(end: int) -> None:
        nonlocal start, total, current, prev, ordinal
        if start is not None:
            groups.append((start, end, float(total + current), ordinal))
        start, total, current, prev, ordinal = None, 0, 0, "", False

    for i, w in enumerate(words):
        lw = w.lower()
        if lw in ("a", "an"):
            close(i - 1)
            start, current, prev = i, 1, "article"
            continue
        if lw == "and":
            if prev not in ("hundred", "scale"):
                close(i - 1)
            continue
        if lw in EN_ONES or lw in EN_ORD_ONES:
            value = EN_ONES.get(lw, EN_ORD_ONES.get(lw))
            fits = prev in ("", "hundred", "scale") or (prev == "tens" and value < 10)
            if start is not None and not fits:
                close(i - 1)
            if start is None:
                start = i
            current += value
            ordinal = lw in EN_ORD_ONES
            prev = "ord" if ordinal else "teen" if value >= 10 else "ones"
        elif lw in EN_TENS or lw in EN_ORD_TENS:
            if start is not None and prev not in ("", "hundred", "scale"):
                close(i - 1)
            if start is None:
                start = i
            current += EN_TENS.get(lw, EN_ORD_TENS.get(lw))
            ordinal = lw in EN_ORD_TENS
            prev = "ord" if ordinal else "tens"
        elif lw == "hundred" or lw == "hundredth":
            if start is None or prev in ("hundred", "ord"):
                close(i - 1)
                start, current = i, 1
            current = (current or 1) * 100
            prev, ordinal = ("ord" if lw == "hundredth" else "hundred"), lw == "hundredth"
        elif lw == "dozen":
            if start is None or prev in ("hundred", "ord", "scale", "tens"):
                close(i - 1)
                start, current = i, 1
            current = (current or 1) * 12
            prev = "ones"
        else:  # thousand, million …
            scale = EN_SCALES.get(lw) or EN_ORD_SCALES[lw]
            if start is None or prev in ("ord",):
                close(i - 1)
                start, current = i, 1
            if total and total < scale:  # "two hundred thousand" after an earlier smaller scale
                total = (total + (current or 1)) * scale
            else:
                total += (current or 1) * scale
            current = 0
            prev, ordinal = ("ord" if lw in EN_ORD_SCALES else "scale"), lw in EN_ORD_SCALES
        if ordinal:
            close(i)
    close(len(words) - 1)
    return groups


# ---------------------------------------------------------------------------------------------------
# the extractors; each yields Quantity candidates, overlaps are resolved at the end

def _arabic(text: str):
    for m in NUMBER_RE.finditer(text):
        start = m.start("num")
        before = text[max(0, start - 12):start]
        alpha = re.search(rf"[{_LATIN_LETTER}$]+$", before)
        if alpha and not _CURRENCY_PREFIX.fullmatch(alpha.group()) and not _COUNT_CODES.search(before):
            continue  # CO2, G20, COP15, PM2.5, b1
        if before.endswith((".", ",")) and re.search(r"\d[.,]$", before):
            continue
        raw = m.group("num")
        value = _arabic_value(raw)
        if value is None:
            continue
        after = (m.group("after") or "").strip()
        after_l = after.lower()
        magnitude = "cjkmag" if m.group("cjkmag") else "scale" if m.group("scale") else "num"
        base_end = m.end(magnitude)
        end = m.end() if after else base_end
        kind = "number"
        if m.group("cjkmag"):
            value *= CJK_MAGNITUDES[m.group("cjkmag")]
        elif m.group("scale"):
            value *= _scale_factor(m.group("scale"))
        is_plain = base_end == m.end("num") and re.fullmatch(r"\d+", raw) is not None
        if after and (after[0] in "%‰" or re.match(r"per|pour|por|prozent|процент", after_l)):
            kind = "percent"
            if after[0] == "‰":
                value /= 10
        elif after == "年代":
            kind = "year" if is_plain and len(raw) == 4 else "number"
        elif after == "年":
            kind = "year" if is_plain and len(raw) == 4 else "number"
        elif after == "月" and is_plain and 1 <= int(raw) <= 12:
            kind = "month"
        elif after in ("日", "号") and is_plain and 1 <= int(raw) <= 31:
            kind = "date"
        elif after == "世纪":
            pass
        elif after_l == "s" and is_plain and len(raw) == 4:
            kind = "year"
        elif after_l in ("st", "nd", "rd", "th") and is_plain:
            pass
        else:
            end = base_end
            if is_plain and len(raw) == 4 and 1800 <= int(raw) <= 2199:
                following = text[end:end + 2].lstrip()
                if not following or following[0] not in CN_COUNTERS:
                    kind = "year"
        yield Quantity(float(value), text[start:end], kind, (start, end))


def _scale_factor(word: str) -> int:
    lw = re.sub(r"\s+", " ", word.lower())
    if lw in SCALE_WORDS:
        if word in ("Billion",) or lw in ("billion", "billions"):
            return 10**9
        return SCALE_WORDS[lw]
    for stem, factor in {**RU_SCALE_STEMS, **AR_SCALE_STEMS}.items():
        if lw.startswith(stem):
            return factor
    raise KeyError(word)


def _in_idiom(text: str, start: int, end: int) -> bool:
    for idiom in CN_IDIOMS:
        for m in re.finditer(re.escape(idiom), text[max(0, start - len(idiom)):end + len(idiom)]):
            a = max(0, start - len(idiom)) + m.start()
            if a <= start and end <= a + len(idiom):
                return True
    return False


def _chinese(text: str):
    for m in CN_RUN_RE.finditer(text):
        pre, numeral = m.group("pre"), m.group("num")
        start, end = m.start(), m.end()
        rest = text[end:end + 3]
        if pre == "首":
            continue  # 首 + numeral never occurs; 首届 etc. are handled below
        if _in_idiom(text, m.start("num"), end):
            continue
        value = cn_numeral_value(numeral)
        digit_by_digit = all(ch in CN_DIGITS for ch in numeral) and len(numeral) > 1
        if value is None:
            continue
        approx = re.match(r"[多余来]", rest)
        after = rest[1:] if approx else rest
        kind = "number"
        if pre == "第":
            if digit_by_digit:
                continue
        elif after.startswith("年") and digit_by_digit and len(numeral) == 4:
            kind, end = "year", end + 1
        elif digit_by_digit:
            continue  # 两三个, 十四五: not one number
        elif after.startswith("月") and not approx and 1 <= value <= 12:
            kind, end = "month", end + 1
        elif (after.startswith("日") and not approx and 1 <= value <= 31
              and text[max(0, start - 1):start] == "月"):
            kind, end = "date", end + 1
        elif after[:1] and (after[0] in CN_COUNTERS or after.startswith(CN_UNIT_WORDS)):
            if numeral in ("一", "零", "〇"):
                continue  # 一个, 一批: the indefinite article; 零部件 (parts), 零排放 is not a count
        elif numeral[-1] in CN_BIG and numeral not in CN_IDIOM_NUMERALS and len(numeral) > 1:
            pass
        else:
            continue
        yield Quantity(float(value), text[start:end], kind, (start, end))
    for m in re.finditer(rf"首(?=[{CN_COUNTERS}])", text):
        yield Quantity(1.0, m.group(), "number", m.span())
    for m in CN_PERCENT_RE.finditer(text):
        raw = m.group("num")
        if raw[0].isdigit():
            value = float(raw)
        else:
            whole, _, frac = raw.partition("点")
            number = cn_numeral_value(whole)
            if number is None or (frac and not all(ch in CN_DIGITS for ch in frac)):
                continue
            value = float(f"{number}.{''.join(str(CN_DIGITS[c]) for c in frac) or 0}")
        yield Quantity(value, m.group(), "percent", m.span())
    for m in CN_CENTURY_RE.finditer(text):
        century = int(m.group("c")) if m.group("c").isdigit() else cn_numeral_value(m.group("c"))
        decade = int(m.group("d")) if m.group("d").isdigit() else cn_numeral_value(m.group("d"))
        if century and decade is not None:
            yield Quantity(float((century - 1) * 100 + decade), m.group(), "year", m.span())


# "one" that is not a quantity: no one, each one, one of, one another, one after another, one-stop
_ONE_SKIP_BEFORE = re.compile(r"\b(?:no|any|every|some|each|the|this|that|which)\s+$", re.I)
_ONE_SKIP_AFTER = re.compile(
    r"^\s+(?:of|another|after\s+another|by\s+one)\b|^-(?:stop|off|way|sided|on-one)\b", re.I)


def _english(text: str):
    for m in EN_WORDS_RE.finditer(text):
        body_end = m.start("pct") if m.group("pct") else m.end()
        tokens = [(t.group(), m.start() + t.start())
                  for t in re.finditer(r"[A-Za-z]+", text[m.start():body_end])]
        groups = _english_words_value([t for t, _ in tokens])
        for first, last, value, _ in groups:
            if first > last:
                continue
            s = tokens[first][1]
            e = tokens[last][1] + len(tokens[last][0])
            phrase = text[s:e]
            if phrase.lower() in ("a", "an"):
                continue
            if phrase.lower() == "one" and (_ONE_SKIP_BEFORE.search(text[:s])
                                            or _ONE_SKIP_AFTER.search(text[e:])):
                continue
            kind = "number"
            if last == len(tokens) - 1 and m.group("pct"):
                kind, e = "percent", m.end()
            # a scale word after number words ("seven million") is part of the group already;
            # a foreign scale word after it ("sept milliards") is not attempted.
            yield Quantity(value, text[s:e], kind, (s, e))


def _months(text: str):
    for m in MONTH_RE.finditer(text):
        name = m.group().rstrip(".")
        if m.group("ru"):
            if not _RU_MONTH_WORD.fullmatch(name):
                continue
            month = next(v for stem, v in sorted(_MONTHS_RU_STEMS.items(), key=lambda kv: -len(kv[0]))
                         if name.lower().startswith(stem))
        else:
            month = _MONTH_NAMES[name]
        if name in _AMBIGUOUS_MONTHS:
            before, after = text[:m.start()], text[m.end():]
            number_before = re.search(r"\d(?:st|nd|rd|th)?\s*(?:of\s+)?$", before)
            if not (number_before or re.match(r"\.?,?\s*\d", after)):
                continue
        end = m.start() + len(name)
        yield Quantity(float(month), text[m.start():end], "month", (m.start(), end))


def _resolve(candidates: list[Quantity]) -> list[Quantity]:
    """Non-overlapping quantities, preferring the earliest start and then the longest match."""
    chosen: list[Quantity] = []
    last_end = -1
    for q in sorted(candidates, key=lambda q: (q.span[0], -(q.span[1] - q.span[0]))):
        if q.span[0] >= last_end:
            chosen.append(q)
            last_end = q.span[1]
    return chosen


def _mark_days(text: str, found: list[Quantity]) -> list[Quantity]:
    """A 1–31 number next to a month name is a day of the month ("15 May", "May 15th")."""
    months = [q for q in found if q.kind == "month" and not q.text.endswith("月")]
    out = []
    for q in found:
        if (q.kind == "number" and q.value.is_integer() and 1 <= q.value <= 31
                and re.fullmatch(r"\d+(?:st|nd|rd|th)?", q.text)):
            for mo in months:
                gap_after = text[q.span[1]:mo.span[0]]
                gap_before = text[mo.span[1]:q.span[0]]
                if (mo.span[0] >= q.span[1] and re.fullmatch(r"\s*(?:of\s+|de\s+)?", gap_after)) or (
                        q.span[0] >= mo.span[1] and re.fullmatch(r"\.?\s*", gap_before)):
                    q = dataclasses.replace(q, kind="date")
                    break
        out.append(q)
    return out


# ---------------------------------------------------------------------------------------------------
# public API

def extract_numbers(text: str) -> list[Quantity]:
    """All quantities in ``text``, in order, with normalised values (see the module docstring)."""
    work = _mask_ids(_normalise_digits(text))
    candidates = [*_arabic(work), *_chinese(work), *_english(work), *_months(work)]
    found = _resolve(candidates)
    found = _mark_days(work, found)
    return [dataclasses.replace(q, text=text[q.span[0]:q.span[1]]) for q in found]


def same_value(a: float, b: float) -> bool:
    """Equal values: exact for integers, relative tolerance 1e-6 otherwise (28.3亿 vs 2.83 billion)."""
    if float(a).is_integer() and float(b).is_integer():
        return a == b
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def values(text: str) -> set[float]:
    """The set of values of the quantities in ``text``."""
    return {q.value for q in extract_numbers(text)}


def unsupported_numbers(claim: str, evidence: str) -> list[Quantity]:
    """Quantities of ``claim`` whose value appears nowhere in ``evidence`` (any language, any kind)."""
    have = values(evidence)
    return [q for q in extract_numbers(claim) if not any(same_value(q.value, v) for v in have)]

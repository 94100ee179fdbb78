"""Unit tests of rag.numbers, the value-normalising number extractor."""
import pytest

from rag.numbers import (
    Quantity,
    cn_numeral_value,
    extract_numbers,
    same_value,
    unsupported_numbers,
    values,
)


def found(text: str) -> list[tuple[float, str, str]]:
    return [(q.value, q.text, q.kind) for q in extract_numbers(text)]


def only(text: str) -> Quantity:
    quantities = extract_numbers(text)
    assert len(quantities) == 1, quantities
    return quantities[0]


# --- Arabic numerals and separators ------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("11,000", 11000),
    ("2,830.5", 2830.5),
    ("1 000", 1000),
    ("1\u00a0000\u00a0000", 1_000_000),  # no-break spaces
    ("12\u202f345", 12345),  # narrow no-break space
    ("1.500.000", 1_500_000),  # European, unambiguous: two dot groups
    ("1.500,5", 1500.5),  # European: dot groups then a decimal comma
    ("11.000", 11.0),  # a single dot is a decimal point (documented)
    ("2,83", 2.83),  # a comma not followed by three digits is a decimal comma
    ("3.37", 3.37),
    ("٣٫٥", 3.5),  # Arabic-Indic digits and decimal separator
    ("١٢٣٬٤٥٦", 123456),
    ("۱۲", 12),  # Persian digits
    ("１２３", 123),  # full-width digits
])
def test_arabic_numerals(text, value):
    assert only(text).value == value
    assert only(text).kind == "number"


def test_space_grouping_does_not_join_unrelated_numbers():
    assert [q.value for q in extract_numbers("12 2023")] == [12, 2023]
    assert [q.value for q in extract_numbers("In 2023 150 countries")] == [2023, 150]


def test_ranges_are_not_negative_numbers():
    assert found("2019—2022年") == [(2019, "2019", "year"), (2022, "2022年", "year")]
    assert [q.value for q in extract_numbers("2019-2022")] == [2019, 2022]


# --- Chinese magnitudes ------------------------------------------------------------------------

@pytest.mark.parametrize("text, value, surface", [
    ("28.3 亿吨", 2.83e9, "28.3 亿"),
    ("41 万亿美元", 4.1e13, "41 万亿"),
    ("1.1万余名", 11000, "1.1万"),
    ("72 万千瓦", 720000, "72 万"),  # 千瓦 is kW, not a magnitude
    ("150万立方米", 1.5e6, "150万"),
    ("700万", 7e6, "700万"),
    ("7.11 亿度", 7.11e8, "7.11 亿"),
    ("20.2 万吨", 202000, "20.2 万"),
    ("150多万", 1.5e6, "150多万"),
    ("3 千万", 3e7, "3 千万"),
    ("五万名", 50000, "五万"),
    ("三万亿", 3e12, "三万亿"),
])
def test_chinese_magnitudes(text, value, surface):
    q = only(text)
    assert same_value(q.value, value), q
    assert q.text == surface


# --- Chinese numerals --------------------------------------------------------------------------

@pytest.mark.parametrize("numeral, value", [
    ("八", 8), ("两", 2), ("十", 10), ("十四", 14), ("二十", 20), ("七十六", 76), ("一百", 100),
    ("百", 100), ("一百零五", 105), ("一百二十", 120), ("三千", 3000), ("两千三百万", 23_000_000),
    ("一亿两千万", 120_000_000), ("二〇二三", 2023),
])
def test_cn_numeral_value(numeral, value):
    assert cn_numeral_value(numeral) == value


@pytest.mark.parametrize("numeral", ["十四五", "十百千", "万", "亿", ""])
def test_cn_numeral_value_rejects_malformed(numeral):
    assert cn_numeral_value(numeral) is None


@pytest.mark.parametrize("text, value, surface", [
    ("八项行动", 8, "八"),
    ("两届", 2, "两"),
    ("三届伙伴关系论坛", 3, "三"),
    ("十四个", 14, "十四"),
    ("一百个", 100, "一百"),
    ("第七十六届联合国大会", 76, "第七十六"),
    ("第三方市场", 3, "第三"),
    ("第一座电站", 1, "第一"),
    ("中亚五国", 5, "五"),
    ("十年来", 10, "十"),
    ("十多个国家", 10, "十"),
    ("近百场", 100, "百"),
    ("七条原则", 7, "七"),
    ("首届论坛", 1, "首"),
    ("首批援助", 1, "首"),
    ("三位一体", 3, "三"),
])
def test_chinese_numerals_with_counter_or_ordinal(text, value, surface):
    q = only(text)
    assert (q.value, q.text, q.kind) == (value, surface, "number")


@pytest.mark.parametrize("text", [
    "一带一路", "一些", "统一部署", "唯一", "进一步", "之一", "一体化", "一道", "重要一步",
    "一个", "一批项目", "一项长期工作",  # a lone 一 before a counter is the article "a"
    "零部件", "零排放", "二氧化碳", "三方合作", "四季常绿", "十百千", "十四五", "两三个",
    "百年未有之大变局", "千万不要", "万物", "九安风电", "十分重要",
])
def test_chinese_false_positives(text):
    assert extract_numbers(text) == []


def test_ordinal_and_counter_in_one_title():
    assert found("第十四个五年规划") == [(14, "第十四", "number"), (5, "五", "number")]
    assert values("the 14th Five-Year Plan") == {14, 5}


def test_chinese_percent():
    assert found("百分之四十一") == [(41, "百分之四十一", "percent")]
    assert found("百分之三点五") == [(3.5, "百分之三点五", "percent")]


# --- percentages -------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["41%", "41 %", "41％", "41 percent", "41 per cent", "41 pour cent",
                                  "41 por ciento", "41 Prozent", "41 процентов", "forty-one percent"])
def test_percent(text):
    q = only(text)
    assert (q.value, q.kind, q.text) == (41, "percent", text)


def test_percent_decimal():
    assert found("78.8%（自然") == [(78.8, "78.8%", "percent")]


# --- scale words -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("2.83 billion", 2.83e9), ("41 trillion", 4.1e13), ("7 million", 7e6), ("110 million", 1.1e8),
    ("11 thousand", 11000), ("1.5 million", 1.5e6), ("2.5bn", 2.5e9), ("US$41 trillion", 4.1e13),
    ("RMB20 billion", 2e10), ("$5", 5),
    ("2,83 milliards", 2.83e9), ("3 milliard", 3e9), ("3 mil millones", 3e9), ("5 millones", 5e6),
    ("2 billones", 2e12), ("2 Milliarden", 2e9), ("1 Milliarde", 1e9), ("5 Millionen", 5e6),
    ("5 Mio.", 5e6), ("2 Billionen", 2e12), ("5 млрд", 5e9), ("3 млн", 3e6), ("4 тыс.", 4000),
    ("2 миллиарда", 2e9), ("7 миллионов", 7e6), ("3 трлн", 3e12), ("2,5 miliardi", 2.5e9),
    ("seven million", 7e6), ("a million", 1e6), ("two billion", 2e9),
    ("٢٫٨٣ مليار", 2.83e9), ("7 ملايين", 7e6), ("28.3億", 2.83e9), ("700萬", 7e6),
])
def test_scale_words(text, value):
    assert same_value(only(text).value, value)


# --- English number words and ordinals ---------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("one", 1), ("eight", 8), ("twelve", 12), ("twenty", 20), ("forty-six", 46),
    ("ninety nine", 99), ("one hundred", 100), ("a hundred", 100), ("one hundred and fifty", 150),
    ("three thousand", 3000), ("a dozen", 12),
    ("first", 1), ("second", 2), ("third", 3), ("twelfth", 12), ("twentieth", 20),
    ("seventy-sixth", 76), ("twenty-first", 21), ("hundredth", 100),
    ("1st", 1), ("2nd", 2), ("3rd", 3), ("76th", 76), ("21st", 21),
])
def test_english_numbers(text, value):
    q = only(text)
    assert (q.value, q.text) == (value, text)


def test_english_words_split_where_they_do_not_compose():
    assert [q.value for q in extract_numbers("two and three")] == [2, 3]
    assert [q.value for q in extract_numbers("the first and second forums")] == [1, 2]
    assert [q.value for q in extract_numbers("twenty ten")] == [20, 10]


@pytest.mark.parametrize("text", [
    "one of the largest", "one another", "no one", "each one", "built one after another",
    "someone", "often", "tent", "weight", "Tenerife", "millions of people", "hundreds of projects",
])
def test_english_false_positives(text):
    assert extract_numbers(text) == []


# --- years, months, days -----------------------------------------------------------------------

def test_chinese_dates():
    assert found("2023年11月") == [(2023, "2023年", "year"), (11, "11月", "month")]
    assert found("2013 年秋") == [(2013, "2013 年", "year")]
    assert found("4月16日") == [(4, "4月", "month"), (16, "16日", "date")]
    assert found("十一月十二日") == [(11, "十一月", "month"), (12, "十二日", "date")]
    assert found("二〇二三年") == [(2023, "二〇二三年", "year")]
    assert found("10 月 18 至 19 日") == [(10, "10 月", "month"), (18, "18", "number"), (19, "19 日", "date")]


def test_durations_are_numbers_not_years():
    assert found("5 年") == [(5, "5 年", "number")]
    assert found("6个月") == [(6, "6", "number")]


def test_bare_years():
    assert found("in 2023") == [(2023, "2023", "year")]
    assert found("2000 套") == [(2000, "2000", "number")]  # a count before a Chinese counter
    assert found("2,000") == [(2000, "2,000", "number")]
    assert found("1500") == [(1500, "1500", "number")]  # outside 1800–2199


def test_decades():
    assert found("20世纪70年代") == [(1970, "20世纪70年代", "year")]
    assert found("the 1970s") == [(1970, "1970s", "year")]
    assert found("21 世纪海上丝绸之路") == [(21, "21 世纪", "number")]
    assert values("the 21st Century Maritime Silk Road") == {21}


@pytest.mark.parametrize("text, month", [
    ("November 2023", 11), ("Nov 2023", 11), ("Sept. 2023", 9), ("novembre 2023", 11),
    ("noviembre de 2023", 11), ("Oktober 2023", 10), ("Dezember 2023", 12), ("März 2023", 3),
    ("ноября 2023", 11), ("декабрь 2023", 12), ("мая 2023", 5), ("May 2017", 5), ("mars 2017", 3),
])
def test_month_names(text, month):
    year = 2023 if "2023" in text else 2017
    assert [(q.value, q.kind) for q in extract_numbers(text)] == [(month, "month"), (year, "year")]


def test_ambiguous_month_names_need_a_number():
    assert extract_numbers("the May meeting may be held") == []
    assert extract_numbers("a mission to Mars") == []
    assert extract_numbers("Dec and Jan") == []
    assert found("in March") == [(3, "March", "month")]


def test_days_next_to_month_names():
    assert found("15 May 2017") == [(15, "15", "date"), (5, "May", "month"), (2017, "2017", "year")]
    assert found("May 15, 2017") == [(5, "May", "month"), (15, "15", "date"), (2017, "2017", "year")]
    assert [q.kind for q in extract_numbers("15 de mayo de 2023")] == ["date", "month", "year"]
    assert [q.kind for q in extract_numbers("the 3rd of March")] == ["date", "month"]


# --- things that are not quantities ----------------------------------------------------------

@pytest.mark.parametrize("text", ["CO2", "SO2 emissions", "PM2.5", "CH4", "H2", "b1", "A320",
                                  "[p-1-2-1-b1-1-001]", "see p-a-2019-003 and h-1-2", "p-0-001"])
def test_codes_formulas_and_passage_ids_are_skipped(text):
    assert extract_numbers(text) == []


@pytest.mark.parametrize("text, value", [("G20", 20), ("COP15", 15), ("SDG 7", 7), ("ISO14001", 14001),
                                         ("ISO 14001", 14001)])
def test_count_codes_are_kept(text, value):
    assert values(text) == {value}


# --- spans, text and API -----------------------------------------------------------------------

def test_spans_point_into_the_input():
    text = "截至2023年11月，中国已与150多个国家签署200多份文件，资产规模超过41 万亿美元，培训1.1万余名人员。"
    quantities = extract_numbers(text)
    assert [q.value for q in quantities] == [2023, 11, 150, 200, 4.1e13, 11000]
    for q in quantities:
        assert text[q.span[0]:q.span[1]] == q.text


def test_spans_with_non_ascii_digits_and_english():
    text = "Assets of US$41 trillion; ٣٫٥ tonnes; on 15 May 2017 the seventy-sixth session."
    for q in extract_numbers(text):
        assert text[q.span[0]:q.span[1]] == q.text
    assert [q.text for q in extract_numbers(text)] == [
        "41 trillion", "٣٫٥", "15", "May", "2017", "seventy-sixth"]


def test_quantity_is_frozen():
    q = only("41%")
    with pytest.raises(Exception):
        q.value = 1  # type: ignore[misc]


def test_same_value():
    assert same_value(2.83e9, 28.3 * 1e8)
    assert same_value(0.1 + 0.2, 0.3)
    assert not same_value(2.83e9, 2.8e9)
    assert same_value(11000, 11000.0)
    assert not same_value(11000, 11001)
    assert not same_value(2023, 2023.01)
    assert same_value(1.0000001, 1.0)  # relative tolerance 1e-6 for non-integers


def test_values_compare_across_kinds():
    assert values("2023年11月") == {2023, 11}
    assert values("November 2023") == {2023, 11}
    assert values("11 countries") == {11}


@pytest.mark.parametrize("claim, evidence", [
    ("7 million", "700万"),
    ("2.83 billion tonnes", "28.3 亿吨"),
    ("US$41 trillion", "41 万亿美元"),
    ("more than 11,000 professionals", "1.1万余名"),
    ("720,000 kW", "72 万千瓦"),
    ("eight major steps", "八项行动"),
    ("the 76th session", "第七十六届联合国大会"),
    ("the first forum", "首届论坛"),
    ("In November 2023", "2023年11月"),
    ("41%", "百分之四十一"),
    ("the 1970s", "20世纪70年代"),
    ("CO2 emissions fell by 90%", "二氧化碳排放减少了90%"),
    ("G20", "二十国集团"),
    ("as cited in [p-1-3-1-001]", "没有数字"),
    ("2,83 milliards de tonnes", "28.3 亿吨"),
    ("2,83 млрд тонн", "28.3 亿吨"),
])
def test_supported_claims(claim, evidence):
    assert unsupported_numbers(claim, evidence) == []


@pytest.mark.parametrize("claim, evidence, bad", [
    ("700,000", "700万", [700000]),
    ("2.8 billion tonnes", "28.3 亿吨", [2.8e9]),
    ("46 signatories and 18 supporters", "46 家签署机构和 17 家支持机构", [18]),
    ("In October 2023", "2023年11月", [10]),
    ("41 billion", "41 万亿美元", [4.1e10]),
])
def test_unsupported_claims(claim, evidence, bad):
    assert [q.value for q in unsupported_numbers(claim, evidence)] == bad

"""Two facts combined by code (rag/arithmetic.py): the operation asked, the parts, dates, the computation."""
from decimal import Decimal

import pytest

from rag import arithmetic, units


@pytest.mark.parametrize("question, op", [
    ("2022年，国内减排量比出口产品带来的减排量多多少亿吨？", "difference"),
    ("How many more countries joined in 2019 than in 2018?", "difference"),
    ("首批与第二批合计有多少套？", "sum"),
    ("Together, how many tonnes of SO2 and NOx are avoided?", "sum"),
    ("平均大约每隔多少公里有一个大型野生动物通道？", "ratio"),
    ("What percentage of the world's capacity was China's 2022 addition?", "percent"),
    ("两份文件的发布大约相隔几个月？", "date_difference"),
    ("Wie viele Monate lagen zwischen dem Netzanschluss und dem Betrieb?", "date_difference"),
    ("蒙内铁路全长多少公里？", None),
    ("How many tunnels are there?", None),
])
def test_operation(question, op):
    assert arithmetic.operation(question) == op


def test_parts_split_at_the_connective_nearest_the_middle():
    assert arithmetic.parts("首批援助的太阳能校园光伏系统与第二批援助的户用光伏发电系统合计有多少套？") == [
        "首批援助的太阳能校园光伏系统", "第二批援助的户用光伏发电系统合计有多少套？"]
    assert arithmetic.parts("多少？") == ["多少？"]


def test_dated_clauses_find_each_event_and_take_the_year_from_the_heading():
    two = arithmetic.dated_clauses("该项目于 2020 年 9 月正式并网发电，2021 年 4 月正式进入运营期。")
    assert [date for date, _ in two] == [(2020, 9, 0), (2021, 4, 0)]
    assert "运营期" in two[1][1] and "并网" in two[0][1]
    assert arithmetic.dated_clauses("3月28日，中国发布《愿景与行动》。", "2015年")[0][0] == (2015, 3, 28)
    assert arithmetic.dated_clauses("11月6日，2015年国际能源变革论坛期间，发布《苏州宣言》")[0][0] == (2015, 11, 6)


def operand(text, position=0):
    measure = units.measures(text)[0]
    return arithmetic.Operand(measure, text, position)


def test_difference_keeps_the_reports_unit_and_precision():
    result = arithmetic.compute("difference", operand("减排约 22.6 亿吨"), operand("减排约 5.73 亿吨", 1), "", "zh")
    assert result.text == "16.87 亿吨" and result.working == "22.6 亿吨 − 5.73 亿吨 = 16.87 亿吨"


def test_sum_ratio_percent_and_months():
    assert arithmetic.compute("sum", operand("106.1 吨二氧化硫"), operand("118.7 吨氮氧化物", 1), "", "zh").text == "224.8 吨"
    ratio = arithmetic.compute("ratio", operand("全长471公里"), operand("14个通道", 1), "每隔多少公里", "zh")
    assert ratio.text == "33.64公里"
    share = arithmetic.compute("percent", operand("新增 141 吉瓦"), operand("总装机 3.37 太瓦", 1), "", "zh")
    assert share.value.quantize(Decimal("0.1")) == Decimal("4.2") and share.text == "4.2%"
    eggs = arithmetic.compute("ratio", operand("放生海龟超1.7万只"), operand("孵化率78.8%", 1), "", "zh")
    assert round(eggs.value) == 21574
    first = arithmetic.Operand(None, "", 0, (2020, 9, 0))
    second = arithmetic.Operand(None, "", 1, (2021, 4, 0))
    assert arithmetic.compute("date_difference", first, second, "", "de").text == "7 Monate"


def test_other_languages_read_base_units_in_symbols():
    result = arithmetic.compute("difference", operand("每年减少 140 万吨碳排放"), operand("可减排 55.2 万吨二氧化碳", 1), "", "ru")
    assert result.working == "1,400,000 t − 552,000 t = 848,000 t"


def test_a_unit_inside_a_longer_one_is_not_named():
    assert units.named_unit_kinds("how many kWh per resident") == {"energy", "people"}
    assert units.named_unit_kinds("多少千瓦时") == {"energy"}


def test_counts_with_different_measure_words_do_not_add_up():
    sets, vehicles = operand("2000 套太阳能路灯"), operand("28 辆新能源汽车", 1)
    assert not arithmetic._same_kind("sum", sets.measure, vehicles.measure)
    assert arithmetic._same_kind("sum", vehicles.measure, operand("200 辆电动摩托车", 2).measure)


def test_the_second_value_prefers_the_first_ones_passage_when_close():
    """"kWh per resident" of one wind farm: its own residents, not another project's population that scores
    a little higher on words (SAME_PASSAGE_BONUS)."""
    power = arithmetic.Candidate(operand("每年提供清洁电力 1.1 亿度", 0), "清洁电力 1.1 亿度")
    here = arithmetic.Candidate(operand("满足 10 万当地居民用电需求", 1), "10 万当地居民")
    elsewhere = arithmetic.Candidate(operand("惠及 500 万人口", 2), "500 万人口")
    found = [power, here, elsewhere]
    scores = [lambda i: [1.0, 0.1, 0.1][i], lambda i: [0.0, 0.80, 0.82][i]]
    one_passage = {0: "c-1", 1: "c-1", 2: "c-7"}
    together = lambda a, b: one_passage[a.position] == one_passage[b.position]  # noqa: E731
    assert arithmetic.choose("ratio", found, scores)[1] is elsewhere.operand
    assert arithmetic.choose("ratio", found, scores, same_passage=together)[1] is here.operand
    far = [lambda i: [1.0, 0.1, 0.1][i], lambda i: [0.0, 0.70, 0.82][i]]  # a clear winner keeps winning
    assert arithmetic.choose("ratio", found, far, same_passage=together)[1] is elsewhere.operand


def test_an_end_of_a_range_is_not_a_value_to_compute_with():
    text = "孵化率78.8%（自然条件下海龟蛋孵化率约为10%~20%）"
    assert [(m.quantity.text, arithmetic.fits(m, text)) for m in units.measures(text)] == [
        ("78.8%", True), ("10%", False), ("20%", False)]
    assert not any(arithmetic.fits(m, "共10至20座") for m in units.measures("共10至20座"))
    assert all(arithmetic.fits(m, "减排 22.6 亿吨，温度为-5度") for m in units.measures("减排 22.6 亿吨，温度为-5度")
               if m.kind not in ("year", "month", "date", "ordinal"))

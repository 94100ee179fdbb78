"""A number supports a claim only when the evidence uses it for the same thing (rag/units.py, rag/asked.py).

The failure cases are the wrong answers that carried a verified badge on unseen questions.
"""
import pytest

from rag import units
from rag.asked import asked


def holds(wanted, texts):
    """Some text states a value of the asked kind (and, for a count, of the asked noun)."""
    return any(wanted.held_by(m) for text in texts for m in units.measures(text))


def kinds(text):
    return [(m.kind, m.base) for m in units.measures(text)]


@pytest.mark.parametrize("text, kind, base", [
    ("72 万千瓦", "power", 720_000), ("720 MW", "power", 720_000), ("720,000 kW", "power", 720_000),
    ("7.11 亿千瓦时", "energy", 711_000_000), ("711 million kWh", "energy", 711_000_000),
    ("1.1 亿度", "energy", 110_000_000), ("140 万吨", "mass", 1_400_000), ("500 万人口", "people", 5_000_000),
    ("500万立方米", "volume", 5_000_000), ("412亿美元", "money:USD", 41_200_000_000),
    ("US$41 billion", "money:USD", 41_000_000_000), ("3000余名", "people", 3000), ("78.8%", "percent", 78.8),
])
def test_units_are_normalised_to_one_base_per_kind(text, kind, base):
    assert kinds(text)[0] == (kind, pytest.approx(base))


@pytest.mark.parametrize("claim, evidence", [
    ("中老铁路全线共有157座隧道。", "全线隧道施工洞口共设置沉淀池 157 座"),  # tanks, not tunnels
    ("There are 157 tunnels.", "157 sedimentation tanks were set up at the tunnel portals"),
    ("共有12家企业参与。", "2022年12月，项目开工"),  # a month is not a count
    ("可提供500万立方米的水。", "惠及500 万人口"),  # a population is not a volume
    ("共有412个项目。", "投资额达412亿美元"),  # money is not a count of projects
    ("发布了33项行业标准。", "发布了33项国家标准"),  # one category's figure given for its neighbour
    ("It has 33 industry standards.", "It issued 33 national standards."),
])
def test_a_number_used_for_another_thing_is_unsupported(claim, evidence):
    assert units.unsupported(claim, [evidence])


@pytest.mark.parametrize("claim, evidence", [
    ("装机容量为720 MW。", "装机容量72 万千瓦"),
    ("La puissance installée est de 720 MW.", "installed capacity of 720,000 kW"),
    ("中老铁路全线设置沉淀池157座。", "全线隧道施工洞口共设置沉淀池 157 座"),
    ("成员国有33个。", "截至2023年11月，成员国已达到33个"),
    ("It will benefit 44% of the population.", "该项目将惠及蒙古国 44% 的人口"),
])
def test_the_same_thing_in_other_units_or_words_is_supported(claim, evidence):
    assert not units.unsupported(claim, [evidence])


def test_other_languages_compare_units_and_values_not_nouns():
    assert not units.unsupported("Il y a 157 bassins.", ["157 sedimentation tanks"], nouns=False)
    assert units.unsupported("Es sind 157 MW.", ["157 sedimentation tanks"], nouns=False)


@pytest.mark.parametrize("question, kind, noun", [
    ("中老铁路全线共有多少座隧道？", "count", "隧道"),
    ("How many tunnels were built on the realignment?", "count", "tunnel"),
    ("蒙内铁路的总投资是多少？", "money", ""),
    ("Quelle est la puissance installée du projet ?", "power", ""),
    ("¿Cuánta electricidad genera al año la central?", "energy", ""),
    ("中老铁路什么时候全线开通运营？", "date", ""),
    ("Wie viele Windkraftanlagen umfasst der Windpark?", "count", ""),
    ("Why are the bridges so high?", None, ""),
    # a long subject between "how much did" and "cost"; a price or tariff is an amount of money too
    ("How much did the Kisumu solar park's new transmission line cost?", "money", ""),
    ("What is the electricity tariff of the solar park?", "money", ""),
    ("风电项目的上网电价是多少？", "money", ""),
    ("Quel est le prix de l'électricité produite ?", "money", ""),
])
def test_what_a_question_asks_for(question, kind, noun):
    result = asked(question)
    assert (result.kind, result.noun) == (kind, noun)


def test_evidence_must_hold_a_value_of_the_asked_kind():
    evidence = ["全线隧道施工洞口共设置沉淀池 157 座，处理施工废水。"]
    assert not holds(asked("中老铁路全线共有多少座隧道？"), evidence)
    assert holds(asked("中老铁路全线共设置了多少座沉淀池？"), evidence)
    assert not holds(asked("蒙内铁路的总投资是多少？"), ["蒙内铁路全长471公里，全线共设计了14个大型野生动物通道。"])


def test_a_chinese_counted_noun_is_its_whole_phrase():
    """The head of a Chinese noun phrase comes last: 400 辆零排放纯电动大巴 counts 大巴."""
    assert holds(asked("比亚迪的工厂每年能生产多少辆大巴？"), ["每年可生产约400辆零排放纯电动大巴"])
    assert units.measures("每年可生产约400辆零排放纯电动大巴")[0].noun == "零排放纯电动大巴"
    assert units.measures("每年可生产约400辆零排放纯电动大巴")[0].unit == "辆"  # the measure word, not the noun


def test_a_region_need_not_be_named_by_the_passage():
    from rag.asked import missing_names

    context = "2017年，比亚迪在匈牙利投产"
    assert missing_names("比亚迪在欧洲的第一座电动大巴工厂每年能生产多少辆大巴？", "zh", context) == []
    assert missing_names("九安风电项目位于泰国哪个府？", "zh", "九安风电项目位于越南嘉莱省九安乡") == ["泰国"]


@pytest.mark.parametrize("question, kind", [
    ("蒙内铁路是由哪家中国企业承建的？", "org"), ("Which Chinese research institution set up the programme?", "org"),
    ("“雨水集蓄利用技术国际培训班”是由中国哪个省的机构承办的？", "place"), ("In welcher Stadt hat das Zentrum seinen Sitz?", "place"),
    ("九安风电项目位于哪个国家？", "place"),
])
def test_questions_asking_a_name(question, kind):
    assert asked(question).kind == kind


def test_a_name_of_the_asked_kind_must_be_given():
    from rag.asked import names_in

    assert not names_in("蒙内铁路是中国和肯尼亚共建“一带一路”的旗舰项目，由中国企业承建，于2017年5月建成通车。", "org")
    assert "越南" in names_in("九安风电项目位于越南嘉莱省九安乡，是当地首批并网的风电项目。", "place")


def test_a_count_is_shown_with_its_counter():
    assert units.measures("累计孵化并放生海龟超1.7万只")[0].unit == "只"


def test_a_year_the_passage_gives_to_another_thing_is_a_false_premise():
    from rag.asked import years_tied_elsewhere

    sentence = "这是继习近平主席宣布中国力争2030年前实现碳达峰、2060年前实现碳中和后，中国采取的又一重要举措。"
    names = ["碳达峰", "碳中和", "一带一路"]
    assert years_tied_elsewhere("中国为什么要在2030年前实现碳中和？", ["碳中和"], names, [sentence]) == [2030]
    assert years_tied_elsewhere("Why neutrality before 2060?", ["碳中和"], names, [sentence]) == []
    assert years_tied_elsewhere("中国何时实现碳中和？", ["碳中和"], names, [sentence]) == []  # no year given
    # a clause naming nothing ties its year to nothing else: the subject is named once, by the other year
    partnership = "中国于2019年4月发起成立“一带一路”能源合作伙伴关系，截至2023年11月，成员国已达到33个。"
    assert years_tied_elsewhere("截至2023年11月，“一带一路”能源合作伙伴关系有多少成员国？", ["一带一路"], names,
                                [partnership]) == []

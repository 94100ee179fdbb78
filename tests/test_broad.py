"""Question kinds: broad questions (overview / list / compare) in eight languages; single facts stay single."""
from __future__ import annotations

import pytest

from rag import config
from rag.broad import COMPARE, LIST, OVERVIEW, SINGLE, classify
from rag.evaluation import read_questions

EVAL_DIR = config.DEV_QA_FILE.parent

BROAD = [
    ("报告的主要内容是什么？", OVERVIEW),
    ("请总结报告关于绿色金融的论述。", OVERVIEW),
    ("Summarize what the report says about green finance.", OVERVIEW),
    ("What does the report recommend for the future?", OVERVIEW),
    ("Résumez la partie du rapport consacrée aux transports.", OVERVIEW),
    ("¿Qué dice el informe sobre la cooperación energética?", OVERVIEW),
    ("Fassen Sie das Kapitel über grüne Finanzen zusammen.", OVERVIEW),
    ("Каковы основные положения раздела о перспективах?", OVERVIEW),
    ("報告書の展望部分の要点をまとめてください。", OVERVIEW),
    ("لخص ما يقوله التقرير عن التمويل الأخضر.", OVERVIEW),
    ("报告提到了哪些在非洲的项目？", LIST),
    ("Which countries does the report name as partners in low-carbon zones?", LIST),
    ("What happened in 2019 according to the chronology?", LIST),
    ("Quels projets le rapport décrit-il au Kenya ?", LIST),
    ("¿Qué proyectos describe el informe en Argentina?", LIST),
    ("Welche Projekte in Pakistan beschreibt der Bericht?", LIST),
    ("Какие события 2021 года отмечены в хронологии?", LIST),
    ("2019年の出来事をすべて挙げてください。", LIST),
    ("ما هي المشاريع التي يذكرها التقرير في كينيا؟", LIST),
    ("De quoi parle le rapport ?", OVERVIEW),
    ("Worum geht es im Bericht?", OVERVIEW),
    ("Name the countries where China built wind farms.", LIST),
    ("比较蒙内铁路和中老铁路的长度。", COMPARE),
    ("卡洛特和莫祖拉哪个发电量更大？", COMPARE),
    ("¿Cuál genera más electricidad, Karot o Jujuy?", COMPARE),
    ("Какая станция производит больше энергии, Карот или Жужуй?", COMPARE),
    ("Which is larger: the Karot station or the Mozura wind farm? Compare them.", COMPARE),
    ("Comparez le parc éolien de Mozura et celui de Cuu An.", COMPARE),
    ("Compare el proyecto de Dubái y el de Jujuy.", COMPARE),
    ("Vergleichen Sie die beiden Eisenbahnen.", COMPARE),
    ("Сравните две электростанции по мощности.", COMPARE),
    ("カロット水力発電所とモズラ風力発電所を比較してください。", COMPARE),
    ("قارن بين محطة كاروت ومزرعة رياح موزورا.", COMPARE),
]

SINGLES = [
    "2013年秋，习近平主席在出访哪两个国家时先后提出共建“丝绸之路经济带”的倡议？",
    "Which sewage treatment plant is described as the largest in South Asia?",
    "How many more countries joined in 2019 than in 2018?",
    "Which plant is the largest in South Asia?",
    "卡洛特水电站每年节约的标准煤比胡胡伊光伏电站多多少万吨？",
    "Quelle digue la Chine a-t-elle aidé le Bénin à réparer ?",
    "¿Cuántas toneladas de CO2 evita la central de Karot cada año?",
    "Wann wurde das Kraftwerk Karot in Betrieb genommen?",
    "В каком году была запущена программа?",
    "何名の研修生に経験を共有しましたか？",
    "كم عدد الدراجات النارية الكهربائية في الدفعة الأولى؟",
]


@pytest.mark.parametrize(("question", "kind"), BROAD)
def test_broad_questions_get_their_kind(question, kind):
    assert classify(question) == kind


@pytest.mark.parametrize("question", SINGLES)
def test_single_fact_questions_stay_single(question):
    assert classify(question) == SINGLE


def test_dev_sets_measured():
    """Every broad development question gets its kind; no single-fact development question changes path."""
    broad = read_questions(EVAL_DIR / "broad_dev.jsonl")
    assert broad and all(classify(q["question"]) == q["kind"] for q in broad)
    for name in ("qa_dev.jsonl", "refuse_dev.jsonl", "multihop_dev.jsonl"):
        questions = read_questions(EVAL_DIR / name)
        assert questions and [q["question"] for q in questions if classify(q["question"]) != SINGLE] == []


# ---- answers: lists, overviews, comparisons through the pipeline (no model) ------------------------------

import re  # noqa: E402

from rag.evaluation import cited_holder, named_lines  # noqa: E402

MARKER_RE = re.compile(r"\[(\d+)\]")


@pytest.fixture(scope="module")
def pipeline(settings):
    from rag.answer import Pipeline

    return Pipeline(settings)


def ask(pipeline, question: str):
    return pipeline.ask(question, generator="extractive")


def quoted_and_cited(answer) -> bool:
    """Every marker points at a citation, and the sentence each line quotes is that citation's sentence."""
    by_marker = {c.marker: c for c in answer.citations}
    for line in answer.answer.splitlines():
        for marker in map(int, MARKER_RE.findall(line)):
            citation = by_marker[marker]
            if citation.sentence_zh not in citation.zh[citation.span[0]:citation.span[1]]:
                return False
    return all(c.supported for c in answer.citations)


def test_list_of_a_years_events_counts_first_and_cites_the_annex(pipeline):
    answer = ask(pipeline, "What happened in 2019 according to the chronology?")
    events = [line for line in answer.answer.splitlines() if re.match(r"\d+\. ", line)]
    assert answer.kind == LIST and answer.answer.startswith(f"The report names {len(events)}:")
    assert len(events) == 8  # the annex's 2019 heading has eight entries
    assert all(MARKER_RE.search(line) for line in events)
    assert {p[:8] for c in answer.citations for p in c.passage_ids} == {"p-a-2019"}
    assert quoted_and_cited(answer)


def test_list_by_country_in_another_language(pipeline):
    answer = ask(pipeline, "¿Qué proyectos describe el informe en Kenia?")
    assert answer.kind == LIST and "Mombasa" in answer.answer and "蒙内铁路" in answer.answer
    assert all("肯尼亚" in c.sentence_zh for c in answer.citations)
    assert quoted_and_cited(answer)


def test_overview_of_a_topic_has_a_line_then_cited_bullets(pipeline):
    answer = ask(pipeline, "请总结报告关于绿色金融的论述。")
    lines = answer.answer.splitlines()
    assert answer.kind == OVERVIEW and "绿色金融" in lines[0]
    bullets = [line for line in lines[1:] if line.startswith("- ")]
    assert 3 <= len(bullets) <= 7 and all(MARKER_RE.search(b) for b in bullets)
    assert all(c.passage_ids[0].startswith("p-1-5-") for c in answer.citations)
    assert quoted_and_cited(answer)


def test_overview_of_the_whole_report_lists_its_parts(pipeline):
    answer = ask(pipeline, "这份报告的主要内容是什么？")
    assert answer.kind == OVERVIEW
    for part in ("前言", "发展成效", "发展启示", "发展展望", "大事记"):
        assert part in answer.answer
    assert "第十四个五年规划" not in answer.answer  # a document the report cites is not its content


def test_compare_computes_the_ratio_from_cited_values(pipeline):
    answer = ask(pipeline, "Compare the Karot hydropower station and the Jujuy solar plant: how much standard coal "
                           "does each save per year?")
    assert answer.kind == COMPARE
    computed = [line for line in answer.answer.splitlines() if line.startswith("→")]
    assert computed and "1,400,000 t" in computed[0] and "202,000 t" in computed[0] and "6.9 times" in computed[0]
    assert computed[0].index("Karot") < computed[0].index("Jujuy")  # the larger first
    assert quoted_and_cited(answer)


def test_named_items_are_cited_by_passages_that_hold_them(pipeline):
    answer = ask(pipeline, "Which projects in Vietnam does the report describe?")
    item = {"name": "九安风电项目", "aliases": ["Cuu An"], "evidence": "九安风电项目位于越南嘉莱省九安乡"}
    lines = named_lines(answer.answer, item)
    assert lines and cited_holder(lines, item, answer.citations)


def test_broad_question_naming_nothing_takes_the_ordinary_path(pipeline):
    answer = ask(pipeline, "Which ones are the most delicious cakes in Paris?")
    assert answer.kind not in (LIST, OVERVIEW, COMPARE)


def test_single_fact_questions_keep_the_ordinary_path(pipeline):
    answer = ask(pipeline, "How many large wildlife passages were designed along the Mombasa–Nairobi Railway?")
    assert answer.kind not in (LIST, OVERVIEW, COMPARE)


def test_broad_answers_are_fast(pipeline):
    import time

    for question in ("报告提到了哪些在非洲的项目？", "What does the report recommend for the future?",
                     "Vergleichen Sie die Green Investment Principles und die International Platform on "
                     "Sustainable Finance."):
        start = time.perf_counter()
        ask(pipeline, question)
        assert time.perf_counter() - start < 5


def test_list_of_a_kind_from_the_catalogue_keeps_the_kind_asked(pipeline):
    answer = ask(pipeline, "报告提到了哪些联合实验室？")
    assert answer.kind == LIST and answer.answer.startswith("报告中共有 3 项")
    assert answer.answer.count("联合实验室:") == 3


def test_overview_of_a_topic_no_title_names_quotes_the_nearest_passages(pipeline):
    answer = ask(pipeline, "What does the report say about sea turtles?")
    assert answer.kind == OVERVIEW and "passages of the report closest" in answer.answer.splitlines()[0]
    assert any("海龟" in c.sentence_zh for c in answer.citations)
    assert quoted_and_cited(answer)


def test_compare_reads_the_unit_and_what_it_measures_on_either_side(pipeline):
    answer = ask(pipeline, "比较卡洛特水电站和迪拜光热光伏混合发电项目每年减少的二氧化碳排放量。")
    computed = [line for line in answer.answer.splitlines() if line.startswith("→")]
    assert computed == [line for line in computed if "350 万吨" in line and "140 万吨" in line and "2.5 倍" in line]
    assert computed

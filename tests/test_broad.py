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
    ("比较蒙内铁路和中老铁路的长度。", COMPARE),
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

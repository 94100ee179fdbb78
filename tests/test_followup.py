"""Follow-up questions keep their subject (rag/followup.py), and the pipeline answers the standalone question.

The resolver runs on the report's real names (glossary and case-study headings of the shipped corpus);
the pipeline tests use the real index and embedder with the extractive generator.
"""
from __future__ import annotations

import time

import pytest

from rag import config
from rag.answer import EXTRACTIVE, Pipeline
from rag.chunking import chunk_passages
from rag.corpus import load_passages
from rag.followup import HistoryTurn, ReportNames, resolve
from rag.glossary import load_glossary

KAROT_FR = "Quand la centrale hydroélectrique de Karot est-elle entrée en service ?"
KAROT_CHUNK = "c-1-3-1-b4-1-001"


@pytest.fixture(scope="module")
def names() -> ReportNames:
    settings = config.load_settings()
    chunks = chunk_passages(load_passages(settings.zh_file, settings.en_file))
    return ReportNames.from_chunks(chunks, load_glossary(settings.glossary_file))


def turn(question: str, cited: tuple[str, ...] = ()) -> HistoryTurn:
    return HistoryTurn(question, question, "", cited)


@pytest.mark.parametrize("previous, question", [
    (KAROT_FR, "Et quelle est sa puissance installée ?"),
    (KAROT_FR, "et Ghana ?"),
    ("中国在共建国家建设了哪些可再生能源项目？", "那第二个呢？"),
    ("How much electricity did the Mozura Wind Farm generate in 2021?", "and in 2022?"),
    ("When did the Mozura Wind Farm start operating?", "why?"),
    ("阿根廷胡胡伊省光伏电站有什么特别之处？", "它每年能发多少电？"),
    ("阿根廷胡胡伊省光伏电站有什么特别之处？", "该项目是哪一年投产的？"),
    ("When did the China–Laos Railway open?", "How long is the line?"),
    ("¿Cuándo se inauguró el ferrocarril China-Laos?", "¿Cuántos túneles tiene?"),
    ("Wann wurde der Windpark Mozura in Betrieb genommen?", "Wie viel Strom erzeugt er pro Jahr?"),
    ("Когда была введена в эксплуатацию ГЭС Карот?", "Какова её установленная мощность?"),
    ("テマ新コンテナターミナルではどんな施設が作られましたか？", "その港の年間取扱能力は？"),
    ("متى بدأ تشغيل محطة كاروت للطاقة الكهرومائية (Karot)؟", "وما قدرتها المركبة؟"),
])
def test_follow_ups_depend_on_the_conversation(names, previous, question):
    resolution = resolve(question, [turn(previous, (KAROT_CHUNK,))], names)
    assert resolution.depends, resolution.reason
    assert resolution.standalone != question and resolution.subject
    assert resolution.prior_chunks == (KAROT_CHUNK,)


@pytest.mark.parametrize("question", [
    "When was the Lancang-Mekong Environmental Cooperation Center established?",
    "“一带一路”绿色发展国际联盟是哪一年成立的？",
    "中国宣布成立的、用于支持生物多样性保护的基金叫什么名字？",
    "Quelle est la capacité installée de la centrale photovoltaïque de Jujuy en Argentine ?",
    "¿Cuántas toneladas de carbono evitará cada año el proyecto de Dubái?",
    "Какой меморандум подписали Китай и Пакистан в августе 2023 года?",
    "ガーナのテマ新コンテナターミナルで、海亀の孵化率は何パーセントでしたか？",
    "متى أصدرت الصين الكتاب الأبيض «التنمية الخضراء في الصين في العصر الجديد»؟",
    "In its outlook, what kind of green solutions does China say it wants to provide more of?",
])
def test_topic_switches_are_asked_as_typed(names, question):
    resolution = resolve(question, [turn(KAROT_FR, (KAROT_CHUNK,))], names)
    assert not resolution.depends, resolution.reason
    assert resolution.standalone == question and resolution.subject == ""


def test_first_turn_is_its_own_standalone_question(names):
    resolution = resolve("它的装机容量是多少？", [], names)
    assert not resolution.depends and resolution.standalone == "它的装机容量是多少？"


def test_the_cited_case_study_names_the_subject(names):
    """The issue's example: Karot's capacity asked in French after its commissioning date."""
    resolution = resolve("Et quelle est sa puissance installée ?", [turn(KAROT_FR, (KAROT_CHUNK,))], names)
    assert "Karot Hydropower Station" in resolution.standalone
    assert resolution.standalone.startswith("À propos de")  # shown in the asker's language


def test_chinese_pronoun_is_replaced_by_the_subject(names):
    history = [turn("阿根廷胡胡伊省光伏电站在南美有什么特别之处？")]
    resolution = resolve("它是什么时候进入运营期的？", history, names)
    assert resolution.standalone == "阿根廷胡胡伊省光伏电站是什么时候进入运营期的？"


def test_a_fragment_re_asks_the_previous_question(names):
    history = [turn("How much electricity did the Mozura Wind Farm generate in 2021?")]
    assert resolve("and in 2022?", history, names).standalone == \
        "How much electricity did the Mozura Wind Farm generate in 2022?"
    history = [turn("When did the Mozura Wind Farm in Montenegro start operating?")]
    assert "Ghana" in resolve("and Ghana?", history, names).standalone


def test_the_subject_survives_several_follow_ups(names):
    first = "阿根廷胡胡伊省光伏电站在南美有什么特别之处？"
    second = resolve("它是什么时候进入运营期的？", [turn(first)], names)
    history = [turn(first), HistoryTurn(second.question, second.standalone, "", (), second.subject)]
    third = resolve("那一年它一共发了多少电？", history, names)
    assert third.depends and "阿根廷胡胡伊省光伏电站" in third.standalone


def test_that_year_is_the_year_the_previous_answer_gave(names):
    previous = HistoryTurn("阿根廷胡胡伊省光伏电站是什么时候进入运营期的？",
                           answer="报告原文：该项目于 2020 年 9 月正式并网发电，2021 年 4 月正式进入运营期。[1]")
    resolution = resolve("那一年它一共发了多少电？", [previous], names)
    assert resolution.standalone == "2021年阿根廷胡胡伊省光伏电站一共发了多少电？"
    previous = HistoryTurn("When did the Mozura Wind Farm start operating?", answer="In November 2019.[1]")
    assert "2019" in resolve("How much power did it generate that year?", [previous], names).standalone


def test_a_chinese_subject_keeps_its_locative_modifier(names):
    history = [turn("比亚迪在欧洲的第一座电动大巴工厂建在哪个国家？")]
    resolution = resolve("是哪一年投产的？", history, names)
    assert resolution.subject == "比亚迪在欧洲的第一座电动大巴工厂"
    assert resolve("这座工厂每年能生产多少辆大巴？", history, names).standalone == \
        "比亚迪在欧洲的第一座电动大巴工厂每年能生产多少辆大巴？"  # the demonstrative phrase replaced


def test_a_previous_question_without_names_is_carried_whole(names):
    previous = "Which Kazakh oil refinery cut its emissions after an upgrade by a Chinese company?"
    resolution = resolve("When was it originally built?", [turn(previous)], names)
    assert resolution.depends and previous.rstrip("?") in resolution.standalone


def test_resolving_a_turn_takes_well_under_100_ms(names):
    history = [turn(KAROT_FR, (KAROT_CHUNK,))]
    resolve("Et quelle est sa puissance installée ?", history, names)  # language model and jieba load once
    questions = ["Et quelle est sa puissance installée ?", "它每年能发多少电？", "How long is the line?",
                 "When was the Lancang-Mekong Environmental Cooperation Center established?"]
    start = time.perf_counter()
    for question in questions * 5:
        resolve(question, history, names)
    per_turn_ms = (time.perf_counter() - start) * 1000 / (len(questions) * 5)
    assert per_turn_ms < 100, per_turn_ms


# --------------------------------------------------------------------------------------------------
# In the pipeline


@pytest.fixture(scope="module")
def pipeline(settings):
    return Pipeline(settings)


def test_pipeline_answers_the_standalone_question(pipeline):
    first = pipeline.ask("When was the Karot Hydropower Station put into operation?", generator=EXTRACTIVE)
    assert first.standalone == first.question
    history = [HistoryTurn(first.question, first.standalone, first.answer, tuple(c.chunk_id for c in first.citations))]
    events = list(pipeline.stream("And how much coal will it save each year?", history=history,
                                  generator=EXTRACTIVE))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "standalone" and kinds[-1] == "answer"
    answer = events[-1][1]
    assert answer.question == "And how much coal will it save each year?"
    assert "Karot" in answer.standalone and answer.standalone == events[0][1]
    assert answer.language == "en" and not answer.refused
    assert any(c.chunk_id.startswith("c-1-3-1-b4-1") for c in answer.citations)
    assert answer.timings["resolve_ms"] < 100

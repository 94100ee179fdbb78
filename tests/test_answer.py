"""The answer pipeline with the real index and models (extractive for speed, local model for the real thing)."""
import pytest

from rag import prompts
from rag.answer import EXTRACTIVE, Pipeline
from rag.questions import QuestionError


@pytest.fixture(scope="session")
def pipeline(settings):
    return Pipeline(settings)


def test_extractive_answer_quotes_and_cites_the_evidence(pipeline):
    answer = pipeline.ask("乌兰巴托中央污水处理厂项目将惠及蒙古国百分之多少的人口？", generator=EXTRACTIVE)
    assert not answer.refused and answer.language == "zh"
    assert "44%" in answer.answer and "[1]" in answer.answer
    citation = answer.citations[0]
    assert citation.supported and citation.chunk_id.startswith("c-1-2-3-b3-1")
    start, end = citation.span
    assert citation.zh[start:end] == citation.sentence_zh and "44%" in citation.sentence_en


def test_english_question_gets_english_quote(pipeline):
    answer = pipeline.ask("How many large wildlife passages were designed along the Mombasa–Nairobi railway?",
                          generator=EXTRACTIVE)
    assert answer.answer.startswith(prompts.EXTRACTIVE_LABELS["en"]) and "14" in answer.answer
    assert answer.quotes and all(q.isascii() or "–" in q or "’" in q for q in answer.quotes)


def test_unanswerable_question_is_refused_in_its_language(pipeline):
    answer = pipeline.ask("Tell me a joke about engineers.", generator=EXTRACTIVE)
    assert answer.refused and answer.answer == prompts.REFUSALS["en"]
    assert answer.citations == [] and answer.closest


def test_streaming_events_come_in_order(pipeline):
    kinds = [kind for kind, _ in pipeline.stream("蒙内铁路什么时候建成通车？", generator=EXTRACTIVE)]
    assert kinds[0] == "stage" and kinds.index("evidence") < kinds.index("answer") == len(kinds) - 1


def test_empty_question_is_a_plain_error(pipeline):
    with pytest.raises(QuestionError, match="empty"):
        pipeline.ask(" \n\t ", generator=EXTRACTIVE)


def test_local_model_answers_in_the_question_language_with_verified_citation(pipeline):
    answer = pipeline.ask("乌兰巴托中央污水处理厂项目将惠及蒙古国百分之多少的人口？")
    assert not answer.refused
    assert "44" in answer.answer
    assert answer.citations and all(c.supported for c in answer.citations)
    assert answer.timings["total_ms"] > 0


def test_unreachable_server_falls_back_to_extractive(pipeline):
    answer = pipeline.ask("蒙内铁路全长多少公里？", generator="openai:http://127.0.0.1:9|none")
    assert answer.generator.startswith(EXTRACTIVE) and "471" in answer.answer and answer.note

"""Load: 20 questions at once through one pipeline, 5 app sessions at once — no errors, no cross-talk,
models loaded once."""
import concurrent.futures
from pathlib import Path

from rag import embedding
from rag.answer import EXTRACTIVE, Pipeline

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_twenty_concurrent_questions_share_one_pipeline(settings, dev_questions):
    pipeline = Pipeline(settings)
    model = pipeline.retriever.embedder._model  # loaded by the pipeline's warm-up
    questions = [q for q in dev_questions if q.get("evidence")][:20]
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda q: pipeline.ask(q["question"], generator=EXTRACTIVE), questions))
    serial = [pipeline.ask(q["question"], generator=EXTRACTIVE) for q in questions]
    for question, concurrent_answer, serial_answer in zip(questions, answers, serial):
        assert concurrent_answer.question.startswith(question["question"][:20])  # its own question back
        assert concurrent_answer.answer == serial_answer.answer  # same answer as when asked alone
    assert model is not None and pipeline.retriever.embedder._model is model  # loaded once, not per thread
    assert pipeline.retriever.embedder is embedding.get_embedder(settings.embedder, settings.cache_dir)


def test_five_app_sessions_side_by_side(monkeypatch):
    """Five sessions open at once on one server's cached pipeline, asked in turn (AppTest itself is not
    thread-safe: its widget registry is shared, so threads would test the harness, not the app)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RAG_GENERATOR", EXTRACTIVE)
    questions = ["蒙内铁路全长多少公里？", "When did the Karot hydropower station start operating?",
                 "乌兰巴托中央污水处理厂项目将惠及蒙古国百分之多少的人口？",
                 "How many sea turtles did the Tema port project release?", "中老铁路全线绿化总面积是多少？"]
    apps = [AppTest.from_file(APP, default_timeout=600).run() for _ in questions]
    for app, question in zip(apps, questions):
        app.chat_input[0].set_value(question).run()
    for question, app in zip(questions, apps):
        assert not app.exception, [e.value for e in app.exception]
        turns = app.session_state["turns"]
        assert len(turns) == 1 and turns[0].question == question  # no other session's turn here
        assert turns[0].answer is not None and turns[0].answer.citations

"""``rag serve`` over HTTP: a real uvicorn server on a free loopback port, the official ``openai`` client
as the real client, one Pipeline for the module (the shipped models, nothing faked)."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import uvicorn

from rag.answer import OUTCOMES, Pipeline, answer_row
from rag.retrieval import search_row
from rag.server import create_app
from rag.server_chat import CORRECTION, EXTRACTIVE_MODEL_ID, MODEL_ID, reply_text, sources_markdown

KEY = "sk-test-key"
KAROT = "When was the Karot Hydropower Station put into operation?"
CAPACITY = "What is the installed capacity of the Karot hydropower station?"
FOLLOW_UP = "Et quelle est sa puissance installée ?"
OUT_OF_SCOPE = "What is the capital of France?"
NOT_IN_REPORT = "How much did BYD invest in its electric bus factory in Hungary?"
RAILWAY = "蒙内铁路的桥梁为什么设计得那么高？"
MIXED = [KAROT, RAILWAY, CAPACITY, NOT_IN_REPORT, OUT_OF_SCOPE, "中老铁路全线共有多少座隧道？",
         "Quels sont les objectifs de la Coalition internationale pour le développement vert ?"]


@pytest.fixture(scope="module")
def pipeline(settings):
    return Pipeline(settings)


@pytest.fixture(scope="module")
def server(settings, pipeline):
    """The API on 127.0.0.1:<free port> with a key, the local generator and room for one model answer at
    a time (no queue), so that a second model answer is refused while one runs."""
    served = dataclasses.replace(settings, generator="local", api_key=KEY, serve_generators=1, serve_max_queue=0)
    app = create_app(served, pipeline=pipeline, warm_generator=False)
    with running(app) as base:
        yield base, app


@contextlib.contextmanager
def running(app, lifespan: str = "on"):
    """``app`` on uvicorn on 127.0.0.1:<free port>, in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def client(server, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key=key, max_retries=0, timeout=300)


def ask(server, question: str, model: str = EXTRACTIVE_MODEL_ID, history=()):
    messages = [*history, {"role": "user", "content": question}]
    return client(server).chat.completions.create(model=model, messages=messages)


def http(server, method: str, path: str, body: bytes | None = None, key: str | None = KEY) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of a plain HTTP request."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(server[0] + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read()), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), {k.lower(): v for k, v in error.headers.items()}


def plain(value):
    return json.loads(json.dumps(value, ensure_ascii=False))  # as JSON carries it: tuples become lists


def test_models_health_and_search(server, pipeline):
    ids = {m.id: m for m in client(server).models.list().data}
    assert set(ids) == {MODEL_ID, EXTRACTIVE_MODEL_ID}
    assert ids[MODEL_ID].model_extra["generator"] == "local"
    status, health, _ = http(server, "GET", "/healthz")
    assert status == 200 and health["status"] == "ok" and health["index"]["loaded"]
    assert health["index"]["chunks"] == len(pipeline.retriever.chunks) and health["generator"]["spec"] == "local"
    status, found, _ = http(server, "POST", "/v1/search", json.dumps({"query": RAILWAY, "k": 3}).encode())
    assert status == 200 and found == plain(search_row(pipeline.retriever, RAILWAY, 3))


def test_non_streamed_answer_carries_the_citations_of_rag_ask_json(server, pipeline):
    response = ask(server, KAROT)
    expected = answer_row(pipeline.ask(KAROT, generator="extractive"))
    extra = response.model_extra
    assert extra["citations"] == plain(expected["citations"]) and extra["citations"]
    assert extra["outcome"] == expected["outcome"] == "quoted" and extra["refused"] is False
    content = response.choices[0].message.content
    assert content == reply_text(plain(expected)) and "2022" in content
    assert "[1]" in content and "**Sources**" in content and extra["citations"][0]["chunk_id"] in content


def test_streamed_answer_equals_the_non_streamed_one(server):
    stream = client(server).chat.completions.create(
        model=EXTRACTIVE_MODEL_ID, messages=[{"role": "user", "content": RAILWAY}], stream=True)
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    whole = ask(server, RAILWAY)
    assert content == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["citations"] == whole.model_extra["citations"]
    assert chunks[-1].model_extra["outcome"] == whole.model_extra["outcome"]


def test_follow_up_is_resolved_from_the_messages_like_rag_chat(server, pipeline):
    from rag import followup

    first = ask(server, KAROT)
    history = [{"role": "user", "content": KAROT},
               {"role": "assistant", "content": first.choices[0].message.content}]
    response = ask(server, FOLLOW_UP, history=history)
    earlier = followup.ask_history(pipeline, [KAROT], generator="extractive")  # what `rag chat` keeps
    expected = answer_row(pipeline.ask(FOLLOW_UP, history=earlier, generator="extractive"))
    assert "Karot" in response.model_extra["standalone"]
    assert response.model_extra["standalone"] == expected["standalone"]
    assert response.model_extra["citations"] == plain(expected["citations"])
    assert "72" in response.choices[0].message.content  # 72 万千瓦 / 720,000 kilowatts


@pytest.mark.parametrize("question, outcome", [(OUT_OF_SCOPE, "out_of_scope"), (NOT_IN_REPORT, "not_in_report")])
def test_refusal_and_unanswerable(server, question, outcome):
    response = ask(server, question)
    assert response.model_extra["outcome"] == outcome and response.model_extra["refused"] is True
    assert response.model_extra["citations"] == [] and "**Sources**" not in response.choices[0].message.content


def test_bad_requests_are_openai_errors_without_tracebacks(server, settings):
    with pytest.raises(openai.BadRequestError) as error:
        client(server).chat.completions.create(model=EXTRACTIVE_MODEL_ID, messages=[])
    assert error.value.status_code == 400 and "messages" in error.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client(server).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": KAROT}])
    with pytest.raises(openai.BadRequestError):  # the question must come last
        client(server).chat.completions.create(model=EXTRACTIVE_MODEL_ID,
                                               messages=[{"role": "assistant", "content": "hello"}])
    too_long = json.dumps({"messages": [{"role": "user", "content": "x" * (settings.max_question_chars + 1)}]})
    cases = [("POST", "/v1/chat/completions", b"{not json", 400),
             ("POST", "/v1/chat/completions", too_long.encode(), 413),
             ("POST", "/v1/chat/completions", b" " * (settings.serve_max_body_kb * 1024 + 1), 413),
             ("POST", "/v1/search", json.dumps({"query": KAROT, "k": 0}).encode(), 400),
             ("GET", "/v1/nowhere", None, 404)]
    for method, path, body, status in cases:
        got, answer, _ = http(server, method, path, body)
        assert got == status and set(answer) == {"error"}, (path, got, answer)
        assert answer["error"]["message"] and answer["error"]["type"] and "Traceback" not in json.dumps(answer)


def test_wrong_or_missing_key_is_401(server):
    with pytest.raises(openai.AuthenticationError) as error:
        client(server, key="sk-wrong").chat.completions.create(
            model=EXTRACTIVE_MODEL_ID, messages=[{"role": "user", "content": KAROT}])
    assert error.value.status_code == 401
    status, body, headers = http(server, "GET", "/healthz", key=None)
    assert status == 401 and body["error"]["type"] == "invalid_api_key"


def test_twenty_concurrent_requests_answer_as_serial_ones(server):
    questions = [MIXED[i % len(MIXED)] for i in range(20)]
    serial = {q: ask(server, q) for q in MIXED}
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda q: ask(server, q), questions))
    for question, answer in zip(questions, answers):
        assert answer.choices[0].message.content == serial[question].choices[0].message.content
        assert answer.model_extra["citations"] == serial[question].model_extra["citations"]


def test_local_generator_streams_tokens_and_a_full_queue_is_429(server, pipeline, settings):
    """One model answer holds the only slot (the model's lock is held here, so it cannot finish): a second
    model answer gets 429 with Retry-After at once; answers without the model still pass; when the lock
    is released the first streams its tokens and citations, and the slot is free again."""
    from rag.llm import get_generator

    model = get_generator("local", settings.cache_dir)
    model._lock.acquire()
    try:
        stream = client(server).chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": KAROT}], stream=True)
        with pytest.raises(openai.RateLimitError) as full:
            ask(server, CAPACITY, model=MODEL_ID)
        assert full.value.status_code == 429 and int(full.value.response.headers["retry-after"]) >= 1
        assert ask(server, OUT_OF_SCOPE).model_extra["outcome"] == "out_of_scope"  # extractive: not queued
    finally:
        model._lock.release()
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    content, last = "".join(pieces), chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.model_extra["outcome"] in OUTCOMES
    assert last.model_extra["generator"].endswith("local:qwen2.5-coder-1.5b-instruct-q4_k_m)") or \
        last.model_extra["generator"] == "local:qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert content.endswith(sources_markdown(last.model_extra["citations"])) and last.model_extra["citations"]
    if last.model_extra["outcome"] == "answered" and CORRECTION not in content:
        assert len(pieces) >= 3  # the model's tokens came as they were written, then markers and sources
    status, health, _ = http(server, "GET", "/healthz")
    assert health["queues"]["generation"]["in_flight"] == 0  # the slot was given back before [DONE]
    assert ask(server, OUT_OF_SCOPE, model=MODEL_ID).model_extra["outcome"] == "out_of_scope"


def test_live_text_ends_as_the_checked_answer():
    from rag.server_chat import LiveText

    live = LiveText()
    sent = "".join(live.token(p) for p in [" The station", " opened in 2022.", " It has 720", " MW."])
    assert sent == "The station opened in 2022."  # live up to the first sentence end, the rest held
    final = "The station opened in 2022.[1] It has 720 MW.[1]"
    assert sent + live.finish(final) == final
    retried = LiveText()
    sent = "".join(retried.token(p) for p in ["Karot opened", " in 2021."])
    retried.reset()
    assert retried.token("ignored") == ""
    assert retried.finish("它于2022年投运。[1]") == CORRECTION + "它于2022年投运。[1]"
    assert LiveText().token("NOT_FO") == ""  # the model's "no answer" word never reaches the reader


def test_a_reply_gives_back_its_answer_and_cited_chunks():
    from rag.server_chat import pair_turns, read_reply

    citations = [{"marker": 1, "chunk_id": "c-1-3-1-b4-1-001", "section": "s", "section_en": "S", "supported": True,
                  "sentence_zh": "于 2022 年 6 月正式投入运营。", "sentence_en": "It opened in June 2022."}]
    reply = reply_text({"answer": "It opened in June 2022.[1]", "citations": citations})
    assert read_reply(reply, {"c-1-3-1-b4-1-001"}) == ("It opened in June 2022.[1]", ("c-1-3-1-b4-1-001",))
    assert read_reply("written elsewhere `c-9`", {"c-1"}) == ("written elsewhere `c-9`", ())
    turns = [("assistant", "hi"), ("user", "a"), ("assistant", "b"), ("user", "c")]
    assert pair_turns(turns) == [("a", "b"), ("c", "")]


def test_the_serve_section_is_spliced_into_the_report_and_kept_by_full_runs():
    from rag.bench.common import keep_section, replace_section
    from rag.bench.serve import HEADING

    report = "# Benchmarks\n\n## 4. Concurrency\n\nrows\n"
    once = replace_section(report, HEADING, [HEADING, "", "old figures"])
    twice = replace_section(once, HEADING, [HEADING, "", "new figures"])
    assert twice.count(HEADING) == 1 and "new figures" in twice and "old figures" not in twice and "rows" in twice
    assert "new figures" in keep_section(twice, report, HEADING) and keep_section(twice, twice, HEADING) == twice


def wait_for(server, condition, what: str, limit_s: float = 120.0) -> dict:
    """Poll /healthz until ``condition(health)`` holds (a state the server reports, not a guessed delay)."""
    deadline = time.monotonic() + limit_s
    while True:
        health = http(server, "GET", "/healthz")[1]
        if condition(health):
            return health
        assert time.monotonic() < deadline, f"{what}: {health}"
        time.sleep(0.05)


def test_a_gone_client_or_a_timeout_stops_the_work_and_frees_the_slot(server, settings):
    """The model's lock is held here, so each request waits inside the pipeline; a stream whose client
    closes it, and a request past its time limit (504), are told to stop; once the model is free each
    stops at its first token, before its answer, and gives its slot back."""
    from rag.llm import get_generator

    state = server[1].state.rag
    model = get_generator("local", settings.cache_dir)
    stopped = http(server, "GET", "/healthz")[1]["jobs"]["stopped_early"]
    for gone in ("client", "timeout"):
        model._lock.acquire()
        try:
            if gone == "client":
                stream = client(server).chat.completions.create(
                    model=MODEL_ID, messages=[{"role": "user", "content": CAPACITY}], stream=True)
                next(iter(stream))  # the role chunk: the request is admitted and its work started
                stream.close()
            else:
                usual, state.settings = state.settings, dataclasses.replace(state.settings, serve_request_timeout_s=1.0)
                try:
                    with pytest.raises(openai.InternalServerError) as late:
                        ask(server, CAPACITY, model=MODEL_ID)
                finally:
                    state.settings = usual
                assert late.value.status_code == 504 and late.value.body["type"] == "timeout"
            # told to stop: still waiting for the model, or already stopped at an event before it (a client
            # that closes fast can cancel the work before it reaches the model: CI saw this race)
            wait_for(server, lambda h: h["jobs"]["cancelling"] == 1 or h["jobs"]["stopped_early"] == stopped + 1,
                     f"{gone}: the work was not told to stop")
        finally:
            model._lock.release()
        health = wait_for(server, lambda h: h["jobs"]["running"] == 0, f"{gone}: the work did not stop")
        assert health["queues"]["generation"]["in_flight"] == 0
        assert health["jobs"]["stopped_early"] == stopped + 1, gone  # before its answer, not at its end
        stopped += 1


def preflight(base: str, origin: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{base}/v1/chat/completions", method="OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def test_cors_is_off_unless_configured_and_requests_wait_for_the_index(server, settings):
    """CORS answers only the configured origins (the main server has none); a server whose index is not
    loaded yet (no startup here) answers 503 with Retry-After, as JSON."""
    status, headers = preflight(server[0], "https://newsroom.example")
    assert "access-control-allow-origin" not in headers and status == 401  # no CORS: a preflight is a request
    configured = dataclasses.replace(settings, api_key=KEY, serve_cors_origins="https://newsroom.example")
    with running(create_app(configured), lifespan="off") as base:
        status, headers = preflight(base, "https://newsroom.example")
        assert status == 200 and headers["access-control-allow-origin"] == "https://newsroom.example"
        assert "access-control-allow-origin" not in preflight(base, "https://elsewhere.example")[1]
        got, body, headers = http((base,), "POST", "/v1/chat/completions",
                                  json.dumps({"messages": [{"role": "user", "content": KAROT}]}).encode())
        assert got == 503 and body["error"]["type"] == "service_unavailable" and headers["retry-after"] == "5"
        assert http((base,), "GET", "/healthz")[1]["status"] == "loading"


def test_a_document_added_while_serving_is_searched_without_a_restart(settings, pipeline, tmp_path):
    """`rag add` (or the app) while the server runs: the next request starts loading a pipeline with the
    document, requests meanwhile are answered from the one loaded, then the document is found."""
    from rag import collections

    served = dataclasses.replace(settings, data_dir=tmp_path / "data", api_key="")
    app = create_app(served, pipeline=pipeline, warm_generator=False)
    note = tmp_path / "lake-survey.md"
    note.write_text("# Lake Naivasha survey\n\nThe 2024 survey counted 312 flamingos nesting on the north shore "
                    "of Lake Naivasha.\n", encoding="utf-8")
    query = json.dumps({"query": "How many flamingos nest on the north shore of Lake Naivasha?", "k": 3}).encode()
    with running(app) as base:
        collections.add_paths(served, [note])
        deadline, sources = time.monotonic() + 120, []
        while time.monotonic() < deadline:
            status, found, _ = http((base,), "POST", "/v1/search", query, key=None)
            assert status == 200  # answered all along, from the pipeline loaded before
            sources = [r["source"]["document"] for r in found["results"]]
            if "lake-survey.md" in sources:
                break
            time.sleep(0.5)
        assert sources[0] == "lake-survey.md"
        assert app.state.rag.pipeline is not pipeline and app.state.rag.documents == collections.version(served)

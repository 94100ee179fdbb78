"""docs/scaling.md's claims, against local stand-ins: one shared Pipeline serves concurrent users through an
OpenAI-compatible server, and several Pipelines share one read-only index directory.

The stand-in server is loopback only, answers a bounded number of requests, and streams server-sent
events that echo the first fact of the prompt it was sent (so each answer is checkable against its own
question's evidence).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

THREADS = 8
MAX_REQUESTS = 64  # the stand-in refuses more: a runaway retry loop fails the test instead of spinning
MODEL = "stand-in"


class StandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), StandInHandler)
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.second_arrived = threading.Event()
        self.hold_next = False

    def hold_first_stream(self) -> None:
        """The next request keeps its stream waiting until a second request is in flight (at most 20 s)."""
        with self.lock:
            self.second_arrived.clear()
            self.hold_next = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class StandInHandler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            count = len(self.server.requests)
            self.server.requests.append(body)
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
            if self.server.in_flight >= 2:
                self.server.second_arrived.set()
            hold, self.server.hold_next = self.server.hold_next, False
        try:
            if self.path != "/v1/chat/completions" or count >= MAX_REQUESTS or body.get("model") != MODEL:
                self.send_error(400 if count < MAX_REQUESTS else 429)
                return
            if hold:
                self.server.second_arrived.wait(timeout=20)
            self._stream(first_fact(body["messages"]))
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def _stream(self, text: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        pieces = [text[i:i + 12] for i in range(0, len(text), 12)]
        for piece in pieces:
            self._event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            time.sleep(0.01)
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, payload: dict) -> None:
        chunk = {"id": "stand-in", "object": "chat.completion.chunk", "model": MODEL, **payload}
        self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
        self.wfile.flush()


def first_fact(messages: list[dict]) -> str:
    """The text of fact [1] in the first user message (retries repeat the conversation)."""
    user = next(m["content"] for m in messages if m["role"] == "user")
    line = next(line for line in user.splitlines() if line.startswith("[1] "))
    return line[4:].strip()


@pytest.fixture(scope="module")
def stand_in():
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, name="openai-stand-in", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _tree(folder) -> dict[str, tuple[int, str]]:
    return {p.name: (p.stat().st_mode, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def read_only_index(tmp_path_factory, settings):
    """A copy of embeddings/ (the manifest and the files it names), made read-only."""
    source = settings.index_dir
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    folder = tmp_path_factory.mktemp("shared") / "embeddings"
    folder.mkdir()
    for name in ["manifest.json", *manifest["files"].values()]:
        shutil.copy2(source / name, folder / name)
        os.chmod(folder / name, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    yield folder
    os.chmod(folder, stat.S_IRWXU)  # let pytest clean up


@pytest.fixture(scope="module")
def replicas(read_only_index, settings):
    """Two Pipelines over the same read-only index, as two replicas mounting one volume would be."""
    from rag.answer import Pipeline

    before = _tree(read_only_index)
    shared = dataclasses.replace(settings, index_dir=read_only_index)
    pipelines = [Pipeline(shared), Pipeline(shared)]
    # root ignores file modes, so "nothing was written" is checked directly, not left to the permissions
    assert _tree(read_only_index) == before
    return pipelines


def _questions(dev_questions, count: int) -> list[str]:
    picked = [q["question"] for q in dev_questions if q.get("evidence") and q.get("lang") in ("zh", "en")]
    assert len(picked) >= count
    return picked[:count]


def test_one_pipeline_serves_concurrent_questions_through_an_openai_server(replicas, stand_in, dev_questions):
    from rag.citations import strip_markers
    from rag.evaluation import normalise

    pipeline = replicas[0]
    spec = f"openai:{stand_in.url}|{MODEL}"
    questions = _questions(dev_questions, THREADS)
    retriever, embedder, model = pipeline.retriever, pipeline.retriever.embedder, pipeline.retriever.embedder._model

    expected = {q: pipeline.ask(q, generator=spec) for q in questions}  # one at a time: the reference
    sequential_requests = len(stand_in.requests)
    stand_in.hold_first_stream()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        answers = list(pool.map(lambda q: pipeline.ask(q, generator=spec), questions))

    assert stand_in.max_in_flight >= 2, "the questions never overlapped at the server"
    assert len(stand_in.requests) == 2 * sequential_requests <= MAX_REQUESTS
    for question, answer in zip(questions, answers):
        reference = expected[question]
        assert answer.question == question and not answer.refused
        assert answer.generator == f"openai:{stand_in.url}|{MODEL}", answer.note
        # no cross-talk: the same answer and citations as when asked alone, made of this question's evidence
        assert answer.answer == reference.answer
        assert [c.chunk_id for c in answer.citations] == [c.chunk_id for c in reference.citations]
        quotes = normalise("".join(answer.quotes))
        assert normalise(strip_markers(answer.answer)) in quotes
    asked = {m["content"].split("Question: ", 1)[1].split("\n", 1)[0]
             for body in stand_in.requests[sequential_requests:] for m in body["messages"][:2] if m["role"] == "user"}
    assert asked == set(questions)
    # shared, not reloaded: one retriever, one embedder, one model for all threads
    assert pipeline.retriever is retriever and retriever.embedder is embedder and embedder._model is model


def test_two_pipelines_answer_from_one_read_only_index(replicas, read_only_index, dev_questions):
    before = _tree(read_only_index)
    question = _questions(dev_questions, 1)[0]
    first, second = (p.ask(question, generator="extractive") for p in replicas)
    assert not first.refused and first.citations
    assert (first.answer, [c.chunk_id for c in first.citations]) == \
        (second.answer, [c.chunk_id for c in second.citations])
    assert replicas[0].retriever.index.manifest == replicas[1].retriever.index.manifest
    assert _tree(read_only_index) == before
    assert not any(stat.S_IMODE(mode) & 0o222 for mode, _ in before.values())

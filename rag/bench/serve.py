"""Section 5 of ``rag bench`` (``rag bench --serve``): a real ``rag serve`` process asked over HTTP by the
official ``openai`` client from 1, 4 and 16 threads at once, with the extractive and the local generator:
requests/s, p50/p95 latency, refusals by the queue, and the server's memory (its own /proc, not ours).

It is run on its own (it starts a server process) and writes its section into the Markdown report in
place, leaving the other sections as they are; a full ``rag bench`` keeps the section it finds there.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rag import config
from rag.bench.common import (BenchOptions, fmt, load_average, machine_info, ms_since, percentiles, replace_section,
                              say)

LEVELS = (1, 4, 16)  # one user, a few, more users than cores (as section 4)
# Requests per row: enough for a p95 that is not just the maximum (the whole development set for extractive
# answers, ~0.1 s each; model answers take seconds each, so fewer), and at least two per client.
EXTRACTIVE_REQUESTS = 38
MODEL_REQUESTS = 12
HEADING = "## 5. `rag serve` over HTTP"
START_TIMEOUT_S = 600  # index, embedder and the local GGUF loaded on a busy machine
MODELS = {"extractive": "green-silk-rag-extractive", "local": "green-silk-rag"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _memory_mb(pid: int) -> dict:
    """The server's resident memory now (VmRSS) and at its peak (VmHWM), from its /proc status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return {"rss_mb": fields.get("VmRSS"), "peak_rss_mb": fields.get("VmHWM")}


def _health(base: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def start_server(levels, log_path: Path) -> tuple[subprocess.Popen, str, float]:
    """``rag serve`` on a free loopback port with room for the largest level in its queues; returns the
    process, its base URL and the seconds until /healthz said ready."""
    port = _free_port()
    env = {**os.environ, "RAG_GENERATOR": "local", "RAG_API_KEY": "", "RAG_SERVE_MAX_QUEUE": str(max(levels)),
           "RAG_SERVE_MAX_REQUESTS": str(2 * max(levels)), "RAG_SERVE_REQUEST_TIMEOUT_S": "1800"}
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    while (health := _health(base)) is None or health["status"] == "loading":
        if process.poll() is not None or time.perf_counter() - started > START_TIMEOUT_S:
            process.kill()
            raise RuntimeError(f"rag serve did not start; see {log_path}")
        time.sleep(0.5)
    if health["status"] != "ok":
        process.kill()
        raise RuntimeError(f"rag serve could not load: {health.get('error')}")
    return process, base, time.perf_counter() - started


def _level(base: str, model: str, questions: list[str], clients: int) -> dict:
    """``questions`` asked by ``clients`` threads at once, each with its own openai client."""
    import logging

    import openai

    for name in ("httpx", "httpx2", "openai"):  # one INFO line per request would drown the table
        logging.getLogger(name).setLevel(logging.WARNING)
    latencies, refused_by_queue, errors = [], 0, []

    def one(question: str) -> None:
        nonlocal refused_by_queue
        api = openai.OpenAI(base_url=f"{base}/v1", api_key="bench", max_retries=0, timeout=1800)
        start = time.perf_counter()
        try:
            api.chat.completions.create(model=model, messages=[{"role": "user", "content": question}])
            latencies.append(ms_since(start))
        except openai.RateLimitError:
            refused_by_queue += 1
        except openai.APIError as error:
            errors.append(str(error)[:200])

    load_before = load_average()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, questions))
    wall = time.perf_counter() - start
    return {"clients": clients, "requests": len(questions), "wall_s": wall, "requests_per_s": len(latencies) / wall,
            **percentiles(latencies), "http_429": refused_by_queue, "errors": errors,
            "load_before": load_before, "load_after": load_average()}


def bench_serve(questions: list[str], generators=("extractive", "local"), levels=LEVELS) -> dict:
    """Start the server, warm it, measure every generator at every level, read its memory, stop it."""
    log_path = Path(tempfile.gettempdir()) / f"rag-serve-bench-{os.getpid()}.log"
    process, base, startup_s = start_server(levels, log_path)
    out: dict = {"startup_s": startup_s, "memory": {"ready": _memory_mb(process.pid)}, "rows": [],
                 "health": _health(base)}
    try:
        for generator in generators:
            model = MODELS[generator]
            _level(base, model, questions[:2], 1)  # warm: first embedder call, the model's prompt cache
            for clients in levels:
                count = max(EXTRACTIVE_REQUESTS, 2 * clients) if generator == "extractive" else max(MODEL_REQUESTS, clients)
                batch = [questions[i % len(questions)] for i in range(count)]
                row = {"generator": generator, **_level(base, model, batch, clients)}
                out["rows"].append(row)
                say(f"  {generator:<10} {clients:>3} clients: {row['requests']} requests in {row['wall_s']:.1f} s = "
                    f"{row['requests_per_s']:.2f}/s, p50 {fmt(row['p50'], 0)} ms p95 {fmt(row['p95'], 0)} ms, "
                    f"429s {row['http_429']}, errors {len(row['errors'])}, load {row['load_before']} → "
                    f"{row['load_after']}")
            out["memory"][f"after {generator}"] = _memory_mb(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    say(f"  server memory (MB, resident / peak): {out['memory']}; ready in {startup_s:.1f} s")
    return out


def serve_md(serve: dict, meta: dict) -> list[str]:
    """The section's Markdown."""
    lines = [HEADING, "",
             f"`rag bench --serve` on {meta['started_at']}: one `rag serve` process (generator `local`, queues "
             "sized for the largest level), asked over loopback HTTP by the official `openai` client, each "
             "client a thread with one non-streamed request at a time; the questions cycle through the "
             "development set (refusals included, as users send them). **The load average before and after each "
             "row is part of the figure** (2 cores: anything else running inflates the timings 2–5×).", ""]
    lines += _rows_table(serve["rows"])
    memory = ", ".join(f"{when} **{fmt(m['rss_mb'], 0)} MB** (peak {fmt(m['peak_rss_mb'], 0)})"
                       for when, m in serve["memory"].items())
    lines += ["", f"- Server memory, resident (its /proc VmRSS; peak: VmHWM): {memory}. Ready (index, embedder, "
              f"BM25 tables and the local GGUF loaded) {fmt(serve['startup_s'])} s after start.",
              "- Extractive answers need no model: they run concurrently in the server's thread pool, bound by "
              "the embedder and the 2 cores. Model answers queue for the one local model "
              "(`serve_generators` 1), so throughput stays at one answer at a time and latency grows with the "
              "queue: that is what `serve_max_queue` bounds, answering 429 with Retry-After beyond it.",
              "- The local rows mix the development set's questions: refusals, computed and broad answers never "
              "call the model, so one model answer costs more than the mean time per request.", ""]
    return lines


def _rows_table(rows: list[dict]) -> list[str]:
    header = ["generator", "clients", "requests", "seconds", "requests/s", "p50 ms", "p95 ms", "429s", "errors",
              "load before → after"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        cells = [r["generator"], r["clients"], r["requests"], fmt(r["wall_s"]), fmt(r["requests_per_s"], 2),
                 fmt(r["p50"], 0), fmt(r["p95"], 0), r["http_429"], len(r["errors"]),
                 f"{r['load_before']} → {r['load_after']}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def run_serve_section(options: BenchOptions, settings: config.Settings | None = None) -> dict:
    """``rag bench --serve``: measure, print, and write section 5 into ``options.out`` (and ``--json``)."""
    from rag.evaluation import read_questions

    if not config.DEV_QA_FILE.exists():
        raise FileNotFoundError(f"no development questions at {config.DEV_QA_FILE}")
    questions = [q["question"] for q in read_questions(config.DEV_QA_FILE)]
    questions = questions[:options.questions] if options.questions else questions
    meta = machine_info()
    say(f"== 5. rag serve over HTTP == (load {meta['load_average_start']})")
    results = {"machine": meta, "serve": bench_serve(questions, ("extractive",) if options.quick else
                                                     ("extractive", "local"), (1, 4) if options.quick else LEVELS)}
    out = Path(options.out)
    text = out.read_text(encoding="utf-8") if out.exists() else "# Benchmarks\n"
    out.write_text(replace_section(text, HEADING, serve_md(results["serve"], meta)), encoding="utf-8")
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    say(f"wrote section 5 of {out}")
    return results

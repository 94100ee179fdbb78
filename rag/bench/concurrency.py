"""Section 4 of ``rag bench``: questions asked at once from threads through one Pipeline; fails when a
model is loaded again or an answer belongs to another question."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from rag.bench.common import ms_since, percentiles, say

CONCURRENCY_LEVELS = (1, 4, 16)  # one user, a few, more users than cores


def bench_concurrency(pipeline, questions: list[dict], generator: str, levels, requests_min: int) -> list[dict]:
    from rag import llm

    embedder = pipeline.retriever.embedder
    model_before = embedder._model
    loaded_before = {key: id(value) for key, value in llm._LOADED.items()}
    texts = [q["question"] for q in questions]
    out = []
    for threads in levels:
        count = max(requests_min, threads if generator != "extractive" else 2 * threads)
        out.append(_one_level(pipeline, [texts[i % len(texts)] for i in range(count)], generator, threads))
    new_loads = [key for key in llm._LOADED if key not in loaded_before]
    reloaded = [key for key, ident in loaded_before.items() if id(llm._LOADED.get(key)) != ident]
    if embedder._model is not model_before and model_before is not None:
        raise AssertionError("the embedder was loaded again during the concurrency test")
    if len(new_loads) > (0 if generator == "extractive" else 1) or reloaded:
        raise AssertionError(f"models loaded more than once: new {new_loads}, replaced {reloaded}")
    for row in out:
        row["model_loads_during_test"] = len(new_loads)
    return out


def _one_level(pipeline, batch: list[str], generator: str, threads: int) -> dict:
    """``batch`` asked by ``threads`` threads at once: throughput and latency percentiles."""
    from rag.questions import clean_question

    latencies: list[float] = []

    def one(question: str):
        start = time.perf_counter()
        answer = pipeline.ask(question, generator=generator)
        latencies.append(ms_since(start))
        return answer

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        answers = list(pool.map(one, batch))
    wall = time.perf_counter() - start
    if any(a is None or a.question != clean_question(q, pipeline.settings.max_question_chars)
           for a, q in zip(answers, batch)):
        raise AssertionError("a concurrent answer is missing or belongs to another question")
    row = {"generator": generator, "threads": threads, "requests": len(batch), "wall_s": wall,
           "throughput_qps": len(batch) / wall, **percentiles(latencies),
           "answered_by": sorted({a.generator for a in answers})}
    say(f"  {generator:<10} {threads:>3} at once: {len(batch)} questions in {wall:.1f} s = "
        f"{row['throughput_qps']:.2f} questions/s, latency p50 {row['p50']:.0f} ms p95 {row['p95']:.0f} ms")
    return row

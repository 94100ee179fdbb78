"""``rag bench``: speed and memory of the whole product, written to docs/benchmarks.md with plots.

Sections, one module each (each prints its table as it finishes; everything lands in the Markdown,
``--json`` keeps the raw numbers too):
1. ``stages``: index build time (into a temporary folder), embedding throughput per installed embedder,
   per-question p50/p95 of every stage over the development questions, peak RSS;
2. ``generators``: decode tokens/s of the shipped GGUF against the memory-bandwidth limit, llama.cpp with
   1 and 2 threads, and (``--generators``, slow) transformers' GGUF loader in fp32 / bfloat16 /
   torch.compile, with greedy answers compared across backends;
3. ``scale``: synthetic corpora, flat / HNSW / IVF: build time, memory, single-query p50/p95 and
   recall@10 against exact search;
4. ``concurrency``: 1, 4 and 16 questions at once through one Pipeline (threads).
``targets`` judges the numbers, ``plots`` and ``report`` write them, ``run`` runs it all.

Timings on a shared machine are noisy; the load average before and after each section is recorded.
"""
from rag.bench.common import BenchOptions
from rag.bench.run import run_bench

__all__ = ["BenchOptions", "run_bench"]

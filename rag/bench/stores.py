"""``rag bench --stores [N]``: the vector stores at N vectors (default 100,000) — FAISS flat, FAISS HNSW
(as ``make_faiss_index`` builds them) and Milvus through milvus-lite (rag/vectorstore.py, as the Retriever
opens it): insert/build time, single-query search p50/p95, recall@10 against exact search (FAISS flat).

The corpus is the report's own vectors (chunks and sentences, e5, 384 floats) tiled to N, each copy moved
off its source by noise, so neighbourhoods look like a real corpus's (near-duplicates in clusters) rather
than uniform random points; the queries are noisy copies of stored vectors, as in the scale section."""
from __future__ import annotations

import gc
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from rag import config
from rag.bench.common import fmt, load_average, ms_since, percentiles, replace_section, say
from rag.bench.scale import NOISY_COPY_COSINE, _exact, _random_unit, _report_vectors, _unit, recall_at_k

DEFAULT_STORES_N = 100_000  # the size: twice FLAT_MAX_VECTORS, where `auto` has switched to HNSW
TILE_COSINE = 0.9  # a tiled copy keeps this cosine with the report vector it was made from
K = 10
QUERIES = 200  # single queries timed per store (p95 from 200 samples: its 10 slowest decide it)


def tiled_corpus(real: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` unit vectors: the real ones, then copies of them each moved to cosine TILE_COSINE by noise."""
    copies = real[np.arange(max(0, n - len(real))) % len(real)]
    noise = _random_unit(rng, len(copies), real.shape[1]) * math.sqrt(1 / TILE_COSINE**2 - 1)
    return np.ascontiguousarray(np.concatenate([real, _unit(copies + noise)])[:n], dtype=np.float32)


def bench_stores(settings: config.Settings, n: int = DEFAULT_STORES_N, n_queries: int = QUERIES,
                 seed: int = 0) -> dict:
    """Build each store over the same corpus, then time and score single queries against exact search."""
    from rag.index import load_index

    rng = np.random.default_rng(seed)
    real = _report_vectors(load_index(settings))
    base = tiled_corpus(real, n, rng)
    picks = rng.choice(len(base), n_queries, replace=False)
    noise = _random_unit(rng, n_queries, base.shape[1]) * math.sqrt(1 / NOISY_COPY_COSINE**2 - 1)
    queries = _unit(base[picks] + noise).astype(np.float32)
    kth = _exact(base, queries, K)[0][:, -1]
    section = {"n": len(base), "dim": base.shape[1], "real_vectors": len(real), "queries": n_queries, "k": K,
               "tile_cosine": TILE_COSINE, "query_cosine": NOISY_COPY_COSINE, "load_average_before": load_average(),
               "stores": []}
    say(f"\nvector stores: {len(base):,} vectors × {base.shape[1]} ({len(real):,} from the report, the rest "
        f"tiled copies), {n_queries} single queries, recall@{K} against exact search")
    with tempfile.TemporaryDirectory(prefix="rag-bench-stores-") as folder:  # milvus-lite: ~300 MB at 100k
        for name, opener in _openers(settings, Path(folder)):
            gc.collect()
            row = _measure(name, opener, base, queries, kth)
            section["stores"].append(row)
            say(f"  {row['store']:<22} insert/build {row['insert_s']:.1f} s  p50 {row['p50']:.2f} ms  "
                f"p95 {row['p95']:.2f} ms  recall@{K} {row['recall']:.3f}")
    section["load_average_after"] = load_average()
    return section


def _openers(settings: config.Settings, folder: Path):
    """(label, function vectors → store) per store, each as rag/vectorstore.py opens it."""
    import dataclasses

    from rag.index import open_vector_store

    yield "FAISS flat", lambda v: open_vector_store(dataclasses.replace(settings, vector_store="faiss",
                                                                        index_type="flat"), v)
    yield "FAISS HNSW", lambda v: open_vector_store(dataclasses.replace(settings, vector_store="faiss",
                                                                        index_type="hnsw"), v)
    yield "Milvus (milvus-lite)", lambda v: open_vector_store(
        dataclasses.replace(settings, vector_store=f"milvus:{folder / 'bench.db'}", index_type="hnsw"), v)


def _measure(name: str, opener, base: np.ndarray, queries: np.ndarray, kth: np.ndarray) -> dict:
    start = time.perf_counter()
    store = opener(base)
    insert_s = ms_since(start) / 1000
    start = time.perf_counter()
    store.search(queries[:1], K)  # the first search (milvus-lite loads or finishes its index here)
    first_ms = ms_since(start)
    times = []
    for query in queries:
        start = time.perf_counter()
        store.search(query[None, :], K)
        times.append(ms_since(start))
    _, found = store.search(queries, K)
    row = {"store": name, "insert_s": insert_s, "first_search_ms": first_ms, **percentiles(times),
           "recall": recall_at_k(base, queries, found, kth)}
    if hasattr(store, "synced"):  # Milvus: opening the complete collection again (a replica's restart)
        _stop(store)
        start = time.perf_counter()
        again = opener(base)
        row["reopen_s"], row["reopen_inserted"] = ms_since(start) / 1000, again.synced["inserted"]
        _stop(again)  # before its folder is removed
    return row


def _stop(store) -> None:
    """Close the client and stop milvus-lite's in-process server, so reopening reads the file from disk."""
    store.close()
    if store.uri.endswith(".db"):
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(store.uri)


def stores_markdown(section: dict) -> list[str]:
    """The section as docs/benchmarks.md shows it."""
    lines = [f"{section['n']:,} vectors × {section['dim']} ({section['real_vectors']:,} of the report's, the rest "
             f"tiled copies at cosine {section['tile_cosine']}); {section['queries']} single queries (noisy copies "
             f"at cosine {section['query_cosine']}); recall@{section['k']} against exact search. Load average "
             f"before {section['load_average_before']}, after {section['load_average_after']}.", "",
             "| store | insert / build s | first search ms | search p50 ms | search p95 ms | recall@10 | reopen s |",
             "|---|---|---|---|---|---|---|"]
    for row in section["stores"]:
        reopen = f"{fmt(row['reopen_s'], 2)} ({row['reopen_inserted']} inserted)" if "reopen_s" in row else "—"
        lines.append(f"| {row['store']} | {fmt(row['insert_s'])} | {fmt(row['first_search_ms'])} | "
                     f"{fmt(row['p50'], 2)} | {fmt(row['p95'], 2)} | {fmt(row['recall'], 3)} | {reopen} |")
    return lines + [""]


HEADING = "## 6. Vector stores: FAISS and Milvus"


def stores_section_md(section: dict) -> list[str]:
    """Section 6 of docs/benchmarks.md, with what the figures mean."""
    return [HEADING, "", f"`rag bench --stores {section['n']}` (rag/bench/stores.py), the stores as "
            "`open_vector_store` opens them (rag/vectorstore.py): FAISS flat and HNSW in this process, Milvus "
            "through milvus-lite (embedded: a gRPC server on a thread of this process). Insert / build is "
            "opening the store over the vectors: for Milvus, creating the collection, inserting, flushing and "
            "building its HNSW index (M=32, efConstruction 40, ef 128, as FAISS's); reopen is a restart over "
            "the complete collection: milvus-lite's server stopped, then the file opened again (loading the "
            "segments and their saved index, listing the keys; nothing inserted). Search times are single queries "
            "through `store.search`, what `Retriever.dense_ranking` calls.", "", *stores_markdown(section)]


def run_stores_section(options, settings: config.Settings) -> dict:
    """``rag bench --stores [N]``: measure, print, and write section 6 into ``options.out`` (and ``--json``)."""
    import json

    section = bench_stores(settings, options.stores, 20 if options.quick else QUERIES, options.seed)
    say("\n".join(["", *stores_markdown(section)]))
    out = Path(options.out)
    text = out.read_text(encoding="utf-8") if out.exists() else "# Benchmarks\n"
    out.write_text(replace_section(text, HEADING, stores_section_md(section)), encoding="utf-8")
    if options.json_out:
        Path(options.json_out).write_text(json.dumps({"stores": section}, indent=1), encoding="utf-8")
    say(f"\nwrote section 6 of {out}")
    return {"stores": section}

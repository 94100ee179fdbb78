"""Section 3 of ``rag bench``: index scale. Synthetic corpora (random unit vectors of the real dimension,
the report's own vectors mixed in), flat / HNSW / IVF: build time, memory, single-query p50/p95 and
recall@10 against exact search, for random queries (the hard case), noisy copies of stored vectors and
the real questions."""
from __future__ import annotations

import contextlib
import gc
import math
import time

import numpy as np

from rag import config
from rag.bench.common import BenchOptions, load_average, ms_since, percentiles, rss_bytes, say
from rag.bench.targets import TARGET_SCALE_N

NOISY_COPY_COSINE = 0.8  # a "noisy copy" query has this cosine with the stored vector it was made from
EF_SEARCH_VALUES = (16, 32, 64, 128, 256)  # HNSW search breadths tried, around make_faiss_index's 128
NPROBE_VALUES = (1, 4, 16, 64, 256)  # IVF lists probed, up to a near-exhaustive search
K = 10


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def _random_unit(rng, n: int, dim: int) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):  # in blocks: no float64 temporaries of the whole corpus
        block = rng.standard_normal((min(step, n - start), dim), dtype=np.float32)
        out[start:start + len(block)] = _unit(block)
    return out


def _exact(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k scores (k-th score per query is what recall is measured against) by blocked matmul."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    step = 200_000
    for start in range(0, len(base), step):
        scores = queries @ base[start:start + step].T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        merged_ids = np.concatenate([best_ids, top + start], axis=1)
        order = np.argsort(-merged_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, axis=1)
        best_ids = np.take_along_axis(merged_ids, order, axis=1)
    return best_scores, best_ids


def recall_at_k(base: np.ndarray, queries: np.ndarray, found: np.ndarray, kth_scores: np.ndarray,
                eps: float = 1e-5) -> float:
    """Share of returned ids that belong to the exact top-k; ties with the k-th score count as exact."""
    k = found.shape[1]
    hits = 0
    for query, ids, kth in zip(queries, found, kth_scores):
        ids = ids[ids >= 0]
        hits += int(np.count_nonzero(base[ids] @ query >= kth - eps))
    return hits / (len(queries) * k)


def _index_bytes(index) -> int | None:
    import faiss

    with contextlib.suppress(Exception):
        index = faiss.downcast_index(index)
        if isinstance(index, faiss.IndexFlat):
            return index.codes.size()
        if isinstance(index, faiss.IndexHNSW):
            hnsw = index.hnsw
            return (faiss.downcast_index(index.storage).codes.size() + hnsw.neighbors.size() * 4
                    + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4)
        if isinstance(index, faiss.IndexIVF):
            lists = index.invlists
            entries = sum(lists.list_size(i) for i in range(index.nlist))
            return entries * (index.code_size + 8) + index.nlist * index.d * 4
    return None


def _build_ivf(vectors: np.ndarray, rng) -> tuple[object, dict]:
    """IVFFlat as rag/index.py sizes it (4·√n lists), trained on a sample of 40 vectors per list."""
    import faiss

    dim = vectors.shape[1]
    lists = max(1, min(4096, int(4 * np.sqrt(len(vectors)))))
    sample_size = min(len(vectors), 40 * lists)
    sample = vectors[np.sort(rng.choice(len(vectors), sample_size, replace=False))] if sample_size < len(vectors) \
        else vectors
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.train(sample)
    index.add(vectors)
    return index, {"nlist": lists, "trained_on": int(sample_size)}


def _latency(index, queries: np.ndarray, k: int, limit: int) -> list[float]:
    times = []
    for row in queries[:limit]:
        start = time.perf_counter()
        index.search(row[None, :], k)
        times.append(ms_since(start))
    return times



def bench_scale(settings: config.Settings, options: BenchOptions, pipeline, questions) -> dict:
    import faiss

    rng = np.random.default_rng(options.seed)
    real = _report_vectors(pipeline.retriever.index)
    question_vectors = pipeline.retriever.embedder.encode_queries([q["question"] for q in questions])
    n_queries = 20 if options.quick else 200
    section: dict = {"dim": real.shape[1], "real_vectors": len(real), "k": K, "queries": n_queries,
                     "noisy_copy_cosine": NOISY_COPY_COSINE, "faiss_threads": faiss.omp_get_max_threads(),
                     "load_average_before": load_average(), "sizes": []}
    for n in options.scale_sizes:
        section["sizes"].append(_bench_size(n, real, question_vectors, n_queries, rng))
        gc.collect()
    section["extrapolated"] = _extrapolate(section["sizes"])
    section["load_average_after"] = load_average()
    return section


def _report_vectors(index) -> np.ndarray:
    """Every vector of the report's index: chunk vectors (when the index can give them back) and sentences."""
    real = [index.sentence_vectors.reshape(-1, index.sentence_vectors.shape[-1])]
    with contextlib.suppress(RuntimeError):
        real.insert(0, index.faiss_index.reconstruct_n(0, index.faiss_index.ntotal))
    return np.ascontiguousarray(np.concatenate(real), dtype=np.float32)


class _Corpus:
    """One synthetic corpus of ``n`` vectors, its three query sets and their exact top-k."""

    def __init__(self, n: int, real: np.ndarray, question_vectors: np.ndarray, n_queries: int, rng):
        dim = real.shape[1]
        self.base = np.concatenate([_random_unit(rng, max(0, n - len(real)), dim), real[:n]])
        self.picks = rng.choice(len(self.base), n_queries, replace=False)
        noise = _random_unit(rng, n_queries, dim) * math.sqrt(1 / NOISY_COPY_COSINE**2 - 1)
        self.query_sets = {"random": _random_unit(rng, n_queries, dim),
                           "noisy copies": _unit(self.base[self.picks] + noise),
                           "report questions": question_vectors}
        self.truth = {name: _exact(self.base, q, K) for name, q in self.query_sets.items()}

    def measure(self, kind: str, param: str, index, build: dict) -> dict:
        """Latency and recall of one configured index on every query set."""
        row = {"index": kind, "param": param, **build, "query_sets": {}}
        for name, queries in self.query_sets.items():
            limit = min(len(queries), 100 if kind == "flat" and len(self.base) >= 500_000 else len(queries))
            times = _latency(index, queries, K, limit)
            _, found = index.search(queries, K)
            stats = {**percentiles(times), "recall": recall_at_k(self.base, queries, found, self.truth[name][0][:, -1])}
            if name == "noisy copies":
                stats["source_in_top10"] = float(np.mean([p in f for p, f in zip(self.picks, found)]))
            row["query_sets"][name] = stats
        cells = "  ".join(f"{name}: p50 {s['p50']:.2f} p95 {s['p95']:.2f} ms r@10 {s['recall']:.3f}"
                          for name, s in row["query_sets"].items())
        say(f"  {kind:<5} {param:<12} {cells}")
        return row


def _bench_size(n: int, real: np.ndarray, question_vectors: np.ndarray, n_queries: int, rng) -> dict:
    started = time.perf_counter()
    corpus = _Corpus(n, real, question_vectors, n_queries, rng)
    size = {"n": len(corpus.base), "setup_s": ms_since(started) / 1000, "indexes": []}
    say(f"\n{len(corpus.base):,} vectors × {real.shape[1]} ({len(real):,} from the report):")
    for kind in ("flat", "hnsw", "ivf"):
        size["indexes"] += _bench_kind(kind, corpus, rng)
    size["seconds"] = ms_since(started) / 1000
    return size


def _bench_kind(kind: str, corpus: _Corpus, rng) -> list[dict]:
    """Build one index type over the corpus, then measure it at each search setting."""
    import faiss

    from rag.index import make_faiss_index

    gc.collect()
    rss = rss_bytes()
    start = time.perf_counter()
    index, extra = _build_ivf(corpus.base, rng) if kind == "ivf" else (make_faiss_index(corpus.base, kind), {})
    build = {"build_s": ms_since(start) / 1000, "rss_growth_mb": (rss_bytes() - rss) / 2**20,
             "index_mb": (_index_bytes(index) or 0) / 2**20, **extra}
    say(f"  {kind}: built in {build['build_s']:.1f} s, {build['index_mb']:.0f} MB "
        f"(RSS +{build['rss_growth_mb']:.0f} MB) {extra or ''}")
    rows = []
    if kind == "flat":
        rows.append(corpus.measure(kind, "exact", index, build))
        threads = faiss.omp_get_max_threads()
        if threads > 1:  # one query at a time: OpenMP's fork/join can cost more than it saves
            faiss.omp_set_num_threads(1)
            try:
                rows.append(corpus.measure(kind, "exact, 1 thread", index, build))
            finally:
                faiss.omp_set_num_threads(threads)
    elif kind == "hnsw":
        for ef in EF_SEARCH_VALUES:
            index.hnsw.efSearch = ef
            rows.append(corpus.measure(kind, f"efSearch={ef}", index, build))
    else:
        for nprobe in (p for p in NPROBE_VALUES if p <= index.nlist):
            index.nprobe = nprobe
            rows.append(corpus.measure(kind, f"nprobe={nprobe}", index, build))
    return rows


def _extrapolate(sizes: list[dict]) -> list[dict]:
    """Sizes up to 1M that were not run, from the largest that was (flat: linear; HNSW build n·log n)."""
    if not sizes or any(s["n"] >= TARGET_SCALE_N for s in sizes):
        return []
    largest = max(sizes, key=lambda s: s["n"])
    factor = TARGET_SCALE_N / largest["n"]
    rows = []
    for kind in ("flat", "hnsw", "ivf"):
        built = [r for r in largest["indexes"] if r["index"] == kind]
        if not built:
            continue
        row = {"n": TARGET_SCALE_N, "index": kind, "from_n": largest["n"], "index_mb": built[0]["index_mb"] * factor}
        if kind == "flat":
            row["build_s"] = built[0]["build_s"] * factor
            row["p95_ms"] = min(r["query_sets"]["random"]["p95"] for r in built) * factor
        elif kind == "hnsw":
            row["build_s"] = built[0]["build_s"] * factor * math.log(TARGET_SCALE_N) / math.log(largest["n"])
        else:
            row["build_s"] = built[0]["build_s"] * factor  # training on 40 × lists grows with √n, adding with n
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# 4. Concurrency

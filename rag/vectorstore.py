"""Where the dense vectors live: FAISS inside this process (the default) or a Milvus collection.

Both implement ``rag.index.VectorStore``: ``search`` returns faiss-style ``(scores, rows)`` arrays, a row
being the vector's position in the vectors the store was opened with (then appended by ``add``), -1 for
none; ``add``/``remove`` take keys, strings that name a vector (by default a hash of its content).

``RAG_VECTOR_STORE=faiss`` (default) wraps the index loaded from ``embeddings/`` as it is: nothing is
embedded or rebuilt. ``RAG_VECTOR_STORE=milvus:<uri>`` keeps the vectors in a Milvus collection:
``milvus:./rag.db`` is milvus-lite (embedded, one process), ``milvus:http://host:19530`` a Milvus
standalone or cluster that several replicas share (docs/scaling.md, "The index in Milvus").
"""
from __future__ import annotations

import collections
import hashlib
import importlib.util
import logging
import threading
import urllib.parse
from pathlib import Path

import numpy as np

from rag import config
from rag.errors import VectorStoreUnavailable

log = logging.getLogger(__name__)

PIP_MILVUS = "pip install 'green-silk-rag[milvus]' (pymilvus 3 and milvus-lite 3, tested: 3.0.2 and 3.2.2)"
KEY_FIELD, VECTOR_FIELD = "key", "vector"
MAX_KEY_CHARS = 512  # Milvus VARCHAR primary keys need a bound; our keys are 32-hex hashes or chunk ids
# Rows per insert/delete/list call. Milvus refuses gRPC messages over 64 MB by default; 5,000 rows of
# 384 floats are ~8 MB as protobuf, and on milvus-lite larger batches were no faster (rag bench --stores).
BATCH_ROWS = 5_000
MAX_TOP_K = 16_384  # Milvus's limit on one search's top-k (and on a query's limit)
# The graph make_faiss_index builds (M=32, faiss's efConstruction 40, efSearch 128: recall@10 ≥ 0.95 at
# 100k, docs/benchmarks.md), so the two stores compare like for like. Milvus's usual efConstruction 200
# made milvus-lite's build 4× slower here (16 s for 20k vectors) for no recall we needed. Milvus wants
# ef ≥ the top-k asked, so ef grows with n.
HNSW_PARAMS = {"M": 32, "efConstruction": 40}
HNSW_EF = 128
# The Milvus index for the FAISS type the setting resolves to (``auto``: flat up to FLAT_MAX_VECTORS): the
# report's 198 vectors are searched exactly in both stores, so both give the same rows. IVF stays FAISS's.
MILVUS_INDEX_TYPES = {"flat": "FLAT", "hnsw": "HNSW"}
CONNECT_TIMEOUT_S = 10.0  # a refused port fails at once; an unreachable host would otherwise hang


def content_keys(vectors: np.ndarray) -> list[str]:
    """One key per row: the sha256 of its float32 bytes (32 hex), ``~n`` added to the n-th repeat."""
    seen: collections.Counter = collections.Counter()
    keys = []
    for row in np.ascontiguousarray(vectors, dtype=np.float32):
        digest = hashlib.sha256(row.tobytes()).hexdigest()[:32]
        keys.append(f"{digest}~{seen[digest]}" if seen[digest] else digest)
        seen[digest] += 1
    return keys


def _check_keys(keys: list[str], n_rows: int) -> None:
    if len(keys) != n_rows:
        raise ValueError(f"{len(keys)} keys for {n_rows} vectors")
    if len(set(keys)) != len(keys):
        raise ValueError("vector keys must be unique")


def _pad(results: list[list[tuple[float, int]]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query (score, row) lists as faiss's arrays: -inf / -1 where fewer than ``n`` were found."""
    scores = np.full((len(results), n), -np.inf, dtype=np.float32)
    rows = np.full((len(results), n), -1, dtype=np.int64)
    for i, found in enumerate(results):
        for j, (score, row) in enumerate(found[:n]):
            scores[i, j], rows[i, j] = score, row
    return scores, rows


class FaissStore:
    """A FAISS index in this process. Removed rows are tombstones skipped at search time, so row numbers
    never move (IndexHNSWFlat cannot remove at all; IndexFlat's remove_ids would renumber every row)."""

    def __init__(self, index, keys: list[str] | None = None):
        self.index = index
        self._keys = keys
        self._rows: dict[str, int] | None = None
        self._removed: set[int] = set()
        self._lock = threading.Lock()  # faiss's search may run alongside add/remove from another thread

    def __len__(self) -> int:
        return self.index.ntotal - len(self._removed)

    def _row_of(self) -> dict[str, int]:
        """key → row, made on first use: the default store never needs keys, so startup never hashes."""
        if self._rows is None:
            if self._keys is None:
                self._keys = content_keys(self.index.reconstruct_n(0, self.index.ntotal))
            self._rows = {key: row for row, key in enumerate(self._keys)}
        return self._rows

    def search(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if not self._removed:  # faiss pads with -1 itself when n > ntotal
                return self.index.search(queries, n) if n > 0 else _pad([[]] * len(queries), n)
            scores, rows = self.index.search(queries, n + len(self._removed))
            removed = self._removed
        found = [[(float(s), int(r)) for s, r in zip(srow, rrow) if r >= 0 and int(r) not in removed]
                 for srow, rrow in zip(scores, rows)]
        return _pad(found, n)

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        _check_keys(keys, len(vectors))
        with self._lock:
            rows = self._row_of()
            if any(key in rows for key in keys):
                raise ValueError("a key to add is in the store already; remove it first")
            start = self.index.ntotal
            self.index.add(vectors)
            self._keys.extend(keys)
            rows.update((key, start + i) for i, key in enumerate(keys))

    def remove(self, keys: list[str]) -> None:
        with self._lock:
            rows = self._row_of()
            self._removed |= {rows.pop(key) for key in keys if key in rows}


def open_faiss(settings: config.Settings, vectors: np.ndarray | None, keys: list[str] | None,
               index=None) -> FaissStore:
    """The given FAISS index as it is (the committed one: no rebuild), else one built over ``vectors``
    with the configured type (``auto``: flat up to FLAT_MAX_VECTORS, then HNSW)."""
    from rag.index import make_faiss_index, resolve_index_type

    if index is None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = make_faiss_index(vectors, resolve_index_type(settings.index_type, len(vectors)))
    if keys is not None:
        _check_keys(keys, index.ntotal)
    return FaissStore(index, list(keys) if keys is not None else None)


def open_store(settings: config.Settings, vectors: np.ndarray | None = None, keys: list[str] | None = None,
               index=None):
    """The vector store ``settings.vector_store`` names, holding ``vectors`` (or ``index``'s vectors)."""
    if vectors is None and index is None:
        raise ValueError("open_vector_store needs the vectors or a FAISS index over them")
    uri = config.vector_store_uri(settings.vector_store)
    if uri is None:
        return open_faiss(settings, vectors, keys, index)
    if vectors is None:
        vectors = _vectors_of(index)
    from rag.index import resolve_index_type

    kind = resolve_index_type(settings.index_type, len(vectors))
    if kind not in MILVUS_INDEX_TYPES:
        raise VectorStoreUnavailable(f"RAG_INDEX_TYPE={settings.index_type} has no Milvus counterpart here; "
                                     f"use auto, flat or hnsw with RAG_VECTOR_STORE={settings.vector_store}")
    return open_milvus(uri, np.ascontiguousarray(vectors, dtype=np.float32), keys, kind)


def _vectors_of(index) -> np.ndarray:
    try:
        return index.reconstruct_n(0, index.ntotal)
    except RuntimeError:  # an IVF index without a direct map cannot give its vectors back
        raise VectorStoreUnavailable("the FAISS index cannot give its vectors back for Milvus; build it with "
                                     "RAG_INDEX_TYPE=auto, flat or hnsw (rag build)") from None


def milvus_installed(uri: str) -> None:
    """Raise the pip command when pymilvus (or milvus-lite, for a .db file) is missing."""
    if importlib.util.find_spec("pymilvus") is None:
        raise VectorStoreUnavailable(f"RAG_VECTOR_STORE=milvus:{uri} needs pymilvus: {PIP_MILVUS}")
    if uri.endswith(".db") and importlib.util.find_spec("milvus_lite") is None:
        raise VectorStoreUnavailable(f"RAG_VECTOR_STORE=milvus:{uri} (a local file) needs milvus-lite: {PIP_MILVUS}")
    if uri.endswith(".db") and not Path(uri).expanduser().resolve().parent.is_dir():
        raise VectorStoreUnavailable(f"RAG_VECTOR_STORE=milvus:{uri}: the folder "
                                     f"{Path(uri).expanduser().resolve().parent} does not exist; create it first")


def collection_name(keys: list[str], dim: int, kind: str = "hnsw") -> str:
    """The same vectors (by key) and index give the same name: replicas over one index share a collection."""
    digest = hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()[:16]
    return f"rag_{dim}d_{kind}_{digest}"


def open_milvus(uri: str, vectors: np.ndarray, keys: list[str] | None = None, kind: str = "hnsw") -> MilvusStore:
    """Connect, create the collection when missing, then insert only the rows it lacks and delete extras."""
    milvus_installed(uri)
    keys = list(keys) if keys is not None else content_keys(vectors)
    _check_keys(keys, len(vectors))
    if any(len(key) > MAX_KEY_CHARS for key in keys):
        raise ValueError(f"vector keys must be at most {MAX_KEY_CHARS} characters")
    store = MilvusStore(_connect(uri), collection_name(keys, vectors.shape[1], kind), uri, keys, kind)
    store.guarded(lambda: store.sync(vectors), "prepare the collection")
    return store


def _connect(uri: str):
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)  # its failures reach the user as one line
    logging.getLogger("pymilvus.client.iterator").setLevel(logging.ERROR)  # milvus-lite: "client-side ts"
    if uri.endswith(".db"):  # milvus-lite's in-process gRPC server logs a traceback for each RPC it lacks
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)  # (AllocTimestamp, asked by iterators)
    try:
        return MilvusClient(uri=uri, timeout=CONNECT_TIMEOUT_S)
    except MilvusException as error:
        raise VectorStoreUnavailable(_unreachable(uri, error)) from None


def _unreachable(uri: str, error: Exception) -> str:
    reason = getattr(error, "message", "") or str(error) or type(error).__name__
    if uri.endswith(".db"):
        return (f"cannot open the milvus-lite file {uri} ({reason}). milvus-lite serves one process per file: "
                f"is another process using it? Several processes need a Milvus server (docs/scaling.md)")
    host = urllib.parse.urlparse(uri).hostname or "localhost"
    return (f"cannot reach Milvus at {uri} ({reason}). Check that the server is running and listening there "
            f"(docker ps; curl http://{host}:9091/healthz), and the host, port and token")


class MilvusStore:
    """One Milvus collection: VARCHAR primary key + FLOAT_VECTOR, FLAT or HNSW as the FAISS store would
    choose (``kind``), inner product (= cosine: the embedders' vectors are normalised, and IP keeps the
    scores identical to FAISS's IndexFlatIP).

    Every call to the client holds one lock: pymilvus does not document MilvusClient as thread-safe (its
    issue #2832 still asks for the guidance) and milvus-lite serialises writes to a collection anyway.
    Searches of other replicas run in parallel on the server; within a replica they queue."""

    def __init__(self, client, name: str, uri: str, keys: list[str], kind: str = "hnsw"):
        self.client, self.name, self.uri, self.kind = client, name, uri, kind
        self._keys: list[str | None] = list(keys)  # row → key (None once removed)
        self._rows = {key: row for row, key in enumerate(keys)}
        self._lock = threading.Lock()
        self.synced = {"inserted": 0, "removed": 0}  # what opening it wrote (0 and 0: it was complete)

    def __len__(self) -> int:
        return len(self._rows)

    def guarded(self, call, what: str):
        """Run one client call under the lock; a Milvus failure becomes one plain line."""
        from pymilvus.exceptions import MilvusException

        with self._lock:
            try:
                return call()
            except MilvusException as error:
                if getattr(error, "code", None) == 2:  # the client's "cannot connect" code
                    raise VectorStoreUnavailable(_unreachable(self.uri, error)) from None
                raise VectorStoreUnavailable(f"Milvus at {self.uri} could not {what} in collection "
                                             f"{self.name}: {getattr(error, 'message', error)}") from None

    def sync(self, vectors: np.ndarray) -> None:
        """Create the collection when missing; insert the rows it lacks, delete the keys it should not hold."""
        created = not self.client.has_collection(self.name)
        if created:
            self._create(vectors.shape[1])
        else:
            if not self.client.list_indexes(self.name):  # its creator stopped before indexing it
                self._create_index()
            self.client.load_collection(self.name)  # one found on disk or on the server may be released
        stored = set() if created else self._stored_keys()
        missing = [row for row, key in enumerate(self._keys) if key not in stored]
        extras = sorted(stored - self._rows.keys())
        for start in range(0, len(extras), BATCH_ROWS):
            self.client.delete(self.name, ids=extras[start:start + BATCH_ROWS])  # not ours: not _delete
        self._insert([self._keys[row] for row in missing], vectors[missing], upsert=False)
        if missing:  # seal the rows into a segment: milvus-lite searches unflushed rows by brute force in
            self.client.flush(self.name)  # Python (~800 ms a query at 20k rows, measured), never indexed
        if created:  # index after the bulk insert: the load builds it at once (milvus-lite) rather than
            self._create_index()  # in the background while the first questions are brute-forced
            self.client.load_collection(self.name)
        self.synced = {"inserted": len(missing), "removed": len(extras)}
        log.info("Milvus collection %s: %d rows, %d inserted, %d removed", self.name, len(self), len(missing),
                 len(extras))

    def _create(self, dim: int) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(KEY_FIELD, DataType.VARCHAR, is_primary=True, max_length=MAX_KEY_CHARS)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dim)
        self.client.create_collection(self.name, schema=schema)

    def _create_index(self) -> None:
        index_params = self.client.prepare_index_params()
        params = HNSW_PARAMS if self.kind == "hnsw" else {}
        index_params.add_index(field_name=VECTOR_FIELD, index_type=MILVUS_INDEX_TYPES[self.kind], metric_type="IP",
                               params=params)
        # pymilvus 3 sends M and efConstruction as keys of their own; milvus-lite 3.2.2 reads build params
        # only from a JSON "params" key (older pymilvus's form) and silently built M=16 / efConstruction
        # 200 without it (recall@10 0.73 at 100k). A Milvus server reads both forms; the values agree.
        index_params[0]._configs["params"] = dict(params)
        self.client.create_index(self.name, index_params)

    def _stored_keys(self) -> set[str]:
        """Every key in the collection, paged by an iterator (one query returns at most 16,384 rows)."""
        iterator = self.client.query_iterator(self.name, batch_size=BATCH_ROWS, filter="",
                                              output_fields=[KEY_FIELD])
        keys: set[str] = set()
        try:
            while batch := iterator.next():
                keys.update(row[KEY_FIELD] for row in batch)
        finally:
            iterator.close()
        return keys

    def _insert(self, keys: list[str], vectors: np.ndarray, upsert: bool) -> None:
        write = self.client.upsert if upsert else self.client.insert
        for start in range(0, len(keys), BATCH_ROWS):
            block = vectors[start:start + BATCH_ROWS].tolist()
            write(self.name, [{KEY_FIELD: key, VECTOR_FIELD: vector}
                              for key, vector in zip(keys[start:start + BATCH_ROWS], block)])

    def search(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        limit = min(n, MAX_TOP_K, len(self))
        if limit <= 0:
            return _pad([[]] * len(queries), n)
        params = {"metric_type": "IP", "params": {"ef": max(HNSW_EF, limit)} if self.kind == "hnsw" else {}}
        results = self.guarded(lambda: self.client.search(
            self.name, data=np.asarray(queries, dtype=np.float32).tolist(), limit=limit,
            search_params=params, output_fields=[KEY_FIELD]), "search")
        return _pad([self._rows_of(hits) for hits in results], n)

    def _rows_of(self, hits) -> list[tuple[float, int]]:
        """Hits as (score, row); a key this replica does not hold (added by another) or a repeat is skipped."""
        found, seen = [], set()
        for hit in hits:
            row = self._rows.get(hit[KEY_FIELD])
            if row is not None and row not in seen:
                seen.add(row)
                found.append((float(hit["distance"]), row))
        return found

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        """Upsert: written to the shared collection at once, so every replica's searches reach it."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        _check_keys(keys, len(vectors))
        if any(key in self._rows for key in keys):
            raise ValueError("a key to add is in the store already; remove it first")
        self.guarded(lambda: self._insert(keys, vectors, upsert=True) or self._remember(keys), "add vectors")

    def _remember(self, keys: list[str]) -> None:
        start = len(self._keys)
        self._keys.extend(keys)
        self._rows.update((key, start + i) for i, key in enumerate(keys))

    def remove(self, keys: list[str]) -> None:
        known = [key for key in keys if key in self._rows]
        self.guarded(lambda: self._delete(known), "remove vectors")

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), BATCH_ROWS):
            self.client.delete(self.name, ids=keys[start:start + BATCH_ROWS])
        for key in keys:
            self._keys[self._rows.pop(key)] = None

    def close(self) -> None:
        self.client.close()

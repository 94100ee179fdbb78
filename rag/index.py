"""Stage 4 — index: build, store and load the FAISS index of bilingual chunks, safely.

Layout of ``embeddings/``:
- ``index-<sha12>.faiss``: one vector per chunk and language (rows ``vector_chunks`` maps back to chunks)
- ``chunks-<sha12>.json``: the chunk table, the vector → chunk map and the sentence table (plain JSON,
  never pickle)
- ``sentences-<sha12>.npy``: one vector per sentence and language (evidence selection, sentence search)
- ``structure-<sha12>.json``: the report's table of contents, section leads and catalogue (rag/structure.py)
- ``manifest.json``: what was built from what; it names the two data files above.

Writing is atomic: data files get content-addressed names, then ``manifest.json`` is replaced in one
``os.replace``. A crash at any moment leaves the previous manifest pointing at its own, still present,
files. The previous generation's files are kept until the next build, so a reader that read the old
manifest still finds them. Loading verifies the manifest against the files (sha256), the corpus (sha256),
the chunker and the embedder; any mismatch raises ``StaleIndex`` with the reason, and ``ensure_index``
rebuilds. The ``index_type`` setting "auto" chooses flat or HNSW by size (``auto_index_type``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import functools
import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

from rag import config
from rag.chunking import CHUNKER_VERSION, Chunk, Sentence, chunk_passages, chunk_sentences
from rag.corpus import load_english, load_passages
from rag.embedding import get_embedder
from rag.errors import BuildInProgress, StaleIndex
from rag.glossary import load_glossary
from rag.structure import STRUCTURE_VERSION, build_structure

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
LOCK = ".build.lock"
INDEX_TYPES = ("flat", "hnsw", "ivf")
# "auto" (the default) picks flat or hnsw by the number of vectors, as measured in docs/benchmarks.md
# ("Index type by corpus size"). Exact search scans n × 384 × 4 bytes per query: on 2 shared cores that
# measured ~10-40 ms at 100k vectors (one vs two faiss threads), so exact search is kept to half that,
# where it stays well inside the 20 ms budget. Beyond it, HNSW (M=32, efSearch 128) answers one query in
# about a millisecond, with recall@10 ≥ 0.95 on queries that have real neighbours. IVF needs training and
# a tuned nprobe, and at equal recall it was no faster here, so it is never chosen automatically.
FLAT_MAX_VECTORS = 50_000


@dataclasses.dataclass(frozen=True)
class IndexedSentence:
    chunk: int  # position in LoadedIndex.chunks
    sentence: Sentence


@dataclasses.dataclass
class LoadedIndex:
    faiss_index: faiss.Index
    chunks: list[Chunk]
    vector_chunks: np.ndarray  # row of the FAISS index → position in ``chunks``
    sentences: list[IndexedSentence]
    sentence_vectors: np.ndarray  # (len(sentences), languages, dim)
    manifest: dict


def corpus_files(settings: config.Settings) -> list[Path]:
    return [p for p in (settings.zh_file, settings.en_file) if p.exists()]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def corpus_fingerprint(settings: config.Settings) -> dict[str, str]:
    """sha256 of each corpus file, hashed again only when the file's size, times or inode change: the app
    checks the index on every rerun, and hashing the corpus each time was most of that check's cost."""
    fingerprint = {}
    for path in corpus_files(settings):
        stat = path.stat()
        fingerprint[path.name] = _sha256_of_version(str(path.resolve()), stat.st_size, stat.st_mtime_ns,
                                                    stat.st_ctime_ns, stat.st_ino)
    return fingerprint


@functools.lru_cache(maxsize=64)
def _sha256_of_version(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    return sha256_file(Path(path))


def auto_index_type(n_vectors: int) -> str:
    """The FAISS index type for a corpus of ``n_vectors`` vectors: exact "flat" up to 50k, then "hnsw"."""
    if n_vectors < 0:
        raise ValueError(f"n_vectors must be >= 0, got {n_vectors}")
    return "flat" if n_vectors <= FLAT_MAX_VECTORS else "hnsw"


def resolve_index_type(wanted: str, n_vectors: int) -> str:
    """The ``index_type`` setting made concrete: "auto" chooses by size, anything else is taken as given."""
    return auto_index_type(n_vectors) if wanted == "auto" else wanted


def make_faiss_index(vectors: np.ndarray, index_type: str) -> faiss.Index:
    """Inner product on normalised vectors (= cosine). HNSW / IVF only pay off on large corpora."""
    dim = vectors.shape[1]
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
    elif index_type == "ivf":
        lists = max(1, min(4096, int(4 * np.sqrt(len(vectors)))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = max(1, lists // 16)
    else:
        raise ValueError(f"unknown index type {index_type!r}; choose one of {', '.join(INDEX_TYPES)}")
    index.add(vectors)
    return index


class VectorStore(Protocol):
    """Where the dense vectors are searched (``settings.vector_store``; rag/vectorstore.py). Rows are the
    vectors' positions in the order they were opened with, then added; keys name vectors for add/remove."""

    def search(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of shape (len(queries), n), best first, like faiss; row -1 where none."""

    def add(self, keys: list[str], vectors: np.ndarray) -> None: ...

    def remove(self, keys: list[str]) -> None: ...

    def __len__(self) -> int: ...


def open_vector_store(settings: config.Settings, vectors: np.ndarray | None = None, keys: list[str] | None = None,
                      index: faiss.Index | None = None) -> VectorStore:
    """The configured store over ``vectors`` (keys: a content hash per row unless given). ``index``, a FAISS
    index over the same vectors (the loaded one), is used as it is by the FAISS store and read back by Milvus."""
    from rag.vectorstore import open_store

    return open_store(settings, vectors, keys, index)


@contextlib.contextmanager
def build_lock(index_dir: Path):
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildInProgress(f"another 'rag build' is writing {index_dir}; wait for it to finish") from None
        yield


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def build_index(settings: config.Settings, progress: bool = True) -> dict:
    """Chunk the corpus, embed both languages, write embeddings/ atomically; return the manifest."""
    with build_lock(settings.index_dir):
        passages = load_passages(settings.zh_file, settings.en_file)
        chunks = chunk_passages(passages, settings.chunk_min_chars, settings.chunk_max_chars)
        embedder = get_embedder(settings.embedder, settings.cache_dir)
        languages = ["zh"] + (["en"] if all(c.en for c in chunks) else [])
        texts = [c.embed_text(lang) for lang in languages for c in chunks]
        log.info("embedding %d texts (%s) with %s", len(texts), "+".join(languages), settings.embedder)
        vectors = embedder.encode_passages(texts, progress=progress)
        index_type = resolve_index_type(settings.index_type, len(vectors))
        vector_chunks = np.tile(np.arange(len(chunks)), len(languages))
        sentences = [IndexedSentence(i, s) for i, chunk in enumerate(chunks) for s in chunk_sentences(chunk)]
        log.info("embedding %d sentences for evidence selection", len(sentences))
        sentence_texts = [getattr(s.sentence, lang) or s.sentence.zh for lang in languages for s in sentences]
        sentence_vectors = embedder.encode_passages(sentence_texts, progress=progress)
        sentence_vectors = sentence_vectors.reshape(len(languages), len(sentences), -1).transpose(1, 0, 2)
        data = {
            "index": ("faiss", faiss.serialize_index(make_faiss_index(vectors, index_type)).tobytes()),
            "chunks": ("json", json.dumps({
                "chunks": [c.to_json() for c in chunks],
                "vector_chunks": vector_chunks.tolist(),
                "sentences": [{"chunk": s.chunk, **dataclasses.asdict(s.sentence)} for s in sentences],
            }, ensure_ascii=False).encode("utf-8")),
            "sentences": ("npy", _npy_bytes(np.ascontiguousarray(sentence_vectors, dtype=np.float32))),
            "structure": ("json", structure_bytes(settings, passages, chunks)),
        }
        files = {key: f"{key}-{hashlib.sha256(blob).hexdigest()[:12]}.{ext}" for key, (ext, blob) in data.items()}
        for key, (_, blob) in data.items():
            write_atomic(settings.index_dir / files[key], blob)
        manifest = {
            "embedder": settings.embedder,
            "embedder_revision": embedder.revision,
            "dimension": int(vectors.shape[1]),
            "chunker_version": CHUNKER_VERSION,
            "chunk_chars": [settings.chunk_min_chars, settings.chunk_max_chars],
            "corpus_sha256": corpus_fingerprint(settings),
            "index_type": index_type,
            "languages": languages,
            "structure_version": STRUCTURE_VERSION,
            "files": files,
            "files_sha256": {key: sha256_file(settings.index_dir / name) for key, name in files.items()},
            "counts": {"passages": len({p for c in chunks for p in c.passage_ids}), "chunks": len(chunks),
                       "vectors": int(len(vectors)), "sentences": len(sentences)},
            "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        _publish_manifest(settings.index_dir, manifest)
        return manifest


def structure_bytes(settings: config.Settings, passages=None, chunks=None) -> bytes:
    """The report's structure (rag/structure.py) as the JSON stored next to the index."""
    passages = passages or load_passages(settings.zh_file, settings.en_file)
    chunks = chunks or chunk_passages(passages, settings.chunk_min_chars, settings.chunk_max_chars)
    structure = build_structure(passages, chunks, load_english(settings.en_file), load_glossary(settings.glossary_file))
    return json.dumps(structure, ensure_ascii=False).encode("utf-8")


def add_structure(settings: config.Settings) -> dict:
    """Store the structure next to an index built before it existed, without embedding anything again."""
    with build_lock(settings.index_dir):
        manifest = read_manifest(settings.index_dir)
        blob = structure_bytes(settings)
        name = f"structure-{hashlib.sha256(blob).hexdigest()[:12]}.json"
        write_atomic(settings.index_dir / name, blob)
        manifest["structure_version"] = STRUCTURE_VERSION
        manifest["files"]["structure"] = name
        manifest["files_sha256"]["structure"] = sha256_file(settings.index_dir / name)
        _publish_manifest(settings.index_dir, manifest)
        return manifest


def has_structure(manifest: dict) -> bool:
    return "structure" in manifest["files"] and manifest.get("structure_version") == STRUCTURE_VERSION


def load_structure(settings: config.Settings) -> dict:
    """The stored structure, checked against the manifest; built in memory (and logged) for an older index."""
    manifest = read_manifest(settings.index_dir)
    check_manifest(manifest, settings, check_embedder=False)
    if not has_structure(manifest):
        log.info("the index has no structure file yet ('rag build' adds it); building it in memory")
        return json.loads(structure_bytes(settings))
    path = settings.index_dir / manifest["files"]["structure"]
    if not path.exists() or sha256_file(path) != manifest["files_sha256"]["structure"]:
        raise StaleIndex(f"the index file {path.name} is missing or corrupt (checksum mismatch)")
    return json.loads(path.read_text(encoding="utf-8"))


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _publish_manifest(index_dir: Path, manifest: dict) -> None:
    """Replace manifest.json, then remove the data files of generations before the previous one.

    The previous generation stays: a reader in another process may have read the old manifest and not yet
    its files (it would find them gone, take the index for stale and try to rebuild it)."""
    try:
        previous = list(read_manifest(index_dir)["files"].values())
    except StaleIndex:
        previous = []
    write_atomic(index_dir / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
    _remove_unreferenced(index_dir, [*manifest["files"].values(), *previous])


def _remove_unreferenced(index_dir: Path, keep) -> None:
    for path in index_dir.glob("*-*.*"):
        if path.suffix in (".faiss", ".json", ".npy") and path.name != MANIFEST and path.name not in keep:
            path.unlink(missing_ok=True)


def read_manifest(index_dir: Path) -> dict:
    path = index_dir / MANIFEST
    if not path.exists():
        raise StaleIndex(f"no index in {index_dir} yet")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["files"]["index"], manifest["files"]["chunks"], manifest["files"]["sentences"]  # noqa: B018
    except (ValueError, KeyError, TypeError) as error:
        raise StaleIndex(f"{path} is unreadable ({error})") from None
    return manifest


def check_manifest(manifest: dict, settings: config.Settings, check_embedder: bool = True) -> None:
    """Raise StaleIndex when the stored index was not built from the current corpus, chunker and model."""
    expected = {
        "embedder": settings.embedder,
        "embedder_revision": get_embedder(settings.embedder, settings.cache_dir).revision if check_embedder else
        manifest.get("embedder_revision"),
        "chunker_version": CHUNKER_VERSION,
        "chunk_chars": [settings.chunk_min_chars, settings.chunk_max_chars],
        "corpus_sha256": corpus_fingerprint(settings),
        "index_type": resolve_index_type(settings.index_type, manifest.get("counts", {}).get("vectors", 0)),
    }
    for key, value in expected.items():
        if manifest.get(key) != value:
            what = "the corpus changed" if key == "corpus_sha256" else f"{key} is {manifest.get(key)!r}, expected {value!r}"
            raise StaleIndex(f"the index is out of date: {what}")


def load_index(settings: config.Settings) -> LoadedIndex:
    manifest = read_manifest(settings.index_dir)
    check_manifest(manifest, settings)
    paths = {key: settings.index_dir / name for key, name in manifest["files"].items()}
    for key, path in paths.items():
        if not path.exists():
            raise StaleIndex(f"the index file {path.name} is missing")
        if sha256_file(path) != manifest["files_sha256"][key]:
            raise StaleIndex(f"the index file {path.name} is corrupt (checksum mismatch)")
    try:
        faiss_index = faiss.deserialize_index(np.frombuffer(paths["index"].read_bytes(), dtype=np.uint8))
        table = json.loads(paths["chunks"].read_text(encoding="utf-8"))
        chunks = [Chunk.from_json(row) for row in table["chunks"]]
        vector_chunks = np.asarray(table["vector_chunks"], dtype=np.int64)
        sentences = [IndexedSentence(row.pop("chunk"), Sentence(**{**row, "span": tuple(row["span"])}))
                     for row in table["sentences"]]
        sentence_vectors = np.load(paths["sentences"], allow_pickle=False)
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        raise StaleIndex(f"the index is unreadable ({error})") from None
    if (faiss_index.ntotal != len(vector_chunks) or faiss_index.d != manifest["dimension"]
            or sentence_vectors.shape[::2] != (len(sentences), manifest["dimension"])):
        raise StaleIndex("the index does not match its manifest (vector count or dimension)")
    return LoadedIndex(faiss_index, chunks, vector_chunks, sentences, sentence_vectors, manifest)


def ensure_index(settings: config.Settings, progress: bool = True) -> LoadedIndex:
    """Load the index, rebuilding it first (with a message saying why) when it is missing or stale."""
    try:
        return load_index(settings)
    except StaleIndex as reason:
        log.warning("%s — rebuilding the index", reason)
        build_index(settings, progress=progress)
        return load_index(settings)

"""Users' documents in named collections, stored under ``Settings.data_dir`` (never inside the package).

Layout of ``data_dir``:
- ``registry.json``: every document (id, collection, name, kind, sha256, pages, passages, chunks,
  sentences, added, embedder, its two data files and their sha256). Replaced in one ``os.replace``: it is
  the commit point of every add and remove, so a crash at any moment leaves the previous registry, which
  names only files that are complete.
- ``docs/<doc id>-<sha12>.json``: the document's chunks, sentences and the content key of each vector row;
  ``docs/<doc id>-<sha12>.npy``: its vectors, one per chunk then one per sentence (float32, normalised).
- ``.lock``: adders and removers take it in turn (readers never wait: they read the registry).

Each text is embedded once: a vector is keyed by the sha256 of the embedder and the text, and adding a
document reuses every vector the store already holds for the same key; removing a document drops its
files. The report (embeddings/) is never embedded again: ``combined_index`` reads its vectors back from
its FAISS index and adds the documents' vectors into one in-memory index whose type follows the number
of vectors (rag/index.py: flat, then HNSW).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from rag import config
from rag.chunking import Chunk, Sentence, chunk_sentences
from rag.documents import KINDS, DocumentError, document_chunks, read_document
from rag.errors import UserError
from rag.index import write_atomic

log = logging.getLogger(__name__)
REGISTRY = "registry.json"
FORMAT = 1
COLLECTION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Texts embedded per call: small enough that a question asked meanwhile in another session waits for at
# most one batch on the shared embedder (~0.5 s on 2 cores), large enough to keep the embedder efficient.
EMBED_BATCH = 32
CHUNK_VECTORS = "mean"  # see _document_vectors
Progress = Callable[[str, str, float], None]  # (file name, stage: reading|cutting|embedding|done, 0..1)


@dataclasses.dataclass(frozen=True)
class AddResult:
    name: str
    status: str  # added | duplicate | error
    message: str
    document: dict | None = None  # the registry record (added, or the one it duplicates)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class DocumentsView:
    """The user documents' chunks, sentences (chunk positions local to ``chunks``) and vectors."""
    chunks: list[Chunk]
    sentences: list[tuple[int, Sentence]]
    chunk_vectors: np.ndarray  # (len(chunks), dim)
    sentence_vectors: np.ndarray  # (len(sentences), dim)


# --------------------------------------------------------------------------------------------------
# Registry


def read_registry(settings: config.Settings) -> dict:
    path = settings.data_dir / REGISTRY
    if not path.exists():
        return {"format": FORMAT, "documents": []}
    try:
        registry = json.loads(path.read_text(encoding="utf-8"))
        registry["documents"]  # noqa: B018
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} is unreadable ({error}); move it away to start an empty store") from None
    return registry


def documents(settings: config.Settings) -> list[dict]:
    """Every added document's record, oldest first."""
    return list(read_registry(settings)["documents"])


def version(settings: config.Settings) -> str:
    """Changes whenever a document is added or removed (the registry is a new file each time): a cache key."""
    try:
        stat = (settings.data_dir / REGISTRY).stat()
    except FileNotFoundError:
        return "empty"
    return f"{stat.st_ino}-{stat.st_mtime_ns}-{stat.st_size}"


def collection_names(settings: config.Settings) -> list[str]:
    """The built-in report's collection, then the users' collections that hold documents."""
    return [config.REPORT_SLUG, *dict.fromkeys(d["collection"] for d in documents(settings))]


def check_collection(name: str) -> str:
    if not COLLECTION_RE.fullmatch(name or ""):
        raise UserError(f"collection name {name!r}: use letters, digits, '.', '_' or '-' (64 at most)")
    if name == config.REPORT_SLUG:
        raise UserError(f"{name} is the built-in report's collection; add documents to another one")
    return name


def _publish(settings: config.Settings, registry: dict) -> None:
    """The commit point: the new registry replaces the old one in one ``os.replace``."""
    write_atomic(settings.data_dir / REGISTRY, json.dumps(registry, ensure_ascii=False, indent=1).encode("utf-8"))


@contextlib.contextmanager
def store_lock(settings: config.Settings):
    """One adder or remover at a time (a second waits); files no registry names (a crash's) are removed."""
    (settings.data_dir / "docs").mkdir(parents=True, exist_ok=True)
    with open(settings.data_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _remove_unreferenced(settings)
        yield


def _remove_unreferenced(settings: config.Settings) -> None:
    keep = {name for d in documents(settings) for name in d["files"].values()}
    for path in (settings.data_dir / "docs").iterdir():
        if path.name not in keep:
            log.info("removing %s (left by an add that did not finish)", path.name)
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Adding and removing


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given; a folder's files of the supported kinds, in name order (others skipped)."""
    files = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in KINDS))
        else:
            files.append(path)
    return files


def add_paths(settings: config.Settings, paths: Iterable[Path], collection: str | None = None,
              progress: Progress | None = None) -> list[AddResult]:
    """Add files and folders; each file gets one result and a bad one never stops the others."""
    return add_files(settings, [(p.name, p, None) for p in expand_paths(paths)], collection, progress)


def add_files(settings: config.Settings, files: list[tuple[str, Path | None, bytes | None]],
              collection: str | None = None, progress: Progress | None = None) -> list[AddResult]:
    """Add (name, path, data) files: read, cut, embed new texts, store, commit one document at a time."""
    collection = check_collection(collection or settings.default_collection)
    report = progress or (lambda name, stage, fraction: None)
    results = []
    with store_lock(settings):
        for name, path, data in files:
            try:
                results.append(_add_one(settings, name, path, data, collection, report))
            except DocumentError as error:
                results.append(AddResult(name, "error", str(error)))
            report(name, "done", 1.0)
    return results


def _add_one(settings, name, path, data, collection, report) -> AddResult:
    report(name, "reading", 0.0)
    document = read_document(path or Path(name), settings, data=data, name=name)
    registry = read_registry(settings)
    for record in registry["documents"]:
        if record["sha256"] == document.sha256:
            return AddResult(name, "duplicate", f"{name}: already added as {record['id']} ({record['name']}, "
                                                f"collection {record['collection']}); not added again", record)
    report(name, "cutting", 0.0)
    doc_id = "d" + document.sha256[:10]
    chunks = document_chunks(document, doc_id, collection, settings.chunk_min_chars, settings.chunk_max_chars)
    sentences = [(i, s) for i, chunk in enumerate(chunks) for s in chunk_sentences(chunk)]
    keys, vectors = _document_vectors(settings, chunks, sentences, lambda done: report(name, "embedding", done))
    files = _write_document(settings, doc_id, chunks, sentences, keys, vectors)
    record = {
        "id": doc_id, "collection": collection, "name": name, "kind": document.kind, "sha256": document.sha256,
        "pages": document.pages, "passages": len({p for c in chunks for p in c.passage_ids}),
        "chunks": len(chunks), "sentences": len(sentences), "characters": document.characters,
        "languages": sorted({c.lang for c in chunks}), "embedder": settings.embedder,
        "dimension": int(vectors.shape[1]),
        "added": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "files": files, "files_sha256": {k: hashlib.sha256((settings.data_dir / "docs" / v).read_bytes()).hexdigest()
                                         for k, v in files.items()},
    }
    registry = read_registry(settings)
    registry["documents"] = [*registry["documents"], record]
    _publish(settings, registry)
    pages = f"{document.pages} pages, " if document.pages else ""
    return AddResult(name, "added", f"{name}: added as {doc_id} to {collection} ({pages}{record['passages']} passages)",
                     record)


def content_key(embedder: str, text: str) -> str:
    return hashlib.sha256(f"{embedder}\0{text}".encode("utf-8")).hexdigest()[:32]


def _vector_cache(settings: config.Settings) -> dict[str, np.ndarray]:
    """Every vector the store holds for the current embedder, by content key."""
    cache = {}
    for record in documents(settings):
        if record.get("embedder") != settings.embedder:
            continue
        try:
            table, vectors = _read_files(settings, record)
        except UserError:
            continue
        cache.update(zip(table["keys"], vectors))
    return cache


def _embed(settings: config.Settings, texts: list[str], progress: Callable[[float], None]) -> tuple[list[str], np.ndarray]:
    """A vector per text: from the store when a document already holds the same text, else embedded now."""
    from rag.embedding import get_embedder

    keys = [content_key(settings.embedder, t) for t in texts]
    cache = _vector_cache(settings)
    todo = list({k: t for k, t in zip(keys, texts) if k not in cache}.items())
    log.info("embedding %d of %d texts (%d already in the store)", len(todo), len(texts), len(texts) - len(todo))
    embedder = get_embedder(settings.embedder, settings.cache_dir) if todo else None
    for start in range(0, len(todo), EMBED_BATCH):
        batch = todo[start:start + EMBED_BATCH]
        cache.update(zip([k for k, _ in batch], embedder.encode_passages([t for _, t in batch])))
        progress(min(1.0, (start + len(batch)) / len(todo)))
    progress(1.0)
    return keys, np.stack([cache[k] for k in keys]).astype(np.float32)


def _document_vectors(settings, chunks, sentences, progress) -> tuple[list[str], np.ndarray]:
    """One vector per chunk, then one per sentence (the layout of the stored ``.npy``).

    CHUNK_VECTORS "embed": each chunk embedded whole (section path + text), as the report's are.
    "mean": only the sentences and each distinct section path are embedded; a chunk's vector is the
    normalised mean of its section's and its sentences' vectors (half the text to embed)."""
    if CHUNK_VECTORS == "embed":
        return _embed(settings, [c.embed_text("zh") for c in chunks] + [s.zh for _, s in sentences], progress)
    chunk_keys = [content_key(settings.embedder, "\x01mean\x01" + c.embed_text("zh")) for c in chunks]
    stored = _vector_cache(settings)
    sections = list(dict.fromkeys(" > ".join(c.section_zh) for c, key in zip(chunks, chunk_keys) if key not in stored))
    keys, vectors = _embed(settings, sections + [s.zh for _, s in sentences], progress)
    section_rows = {section: i for i, section in enumerate(sections)}
    sums = np.zeros((len(chunks), vectors.shape[1]))
    counts = np.zeros(len(chunks))
    for i, chunk in enumerate(chunks):
        if (section := " > ".join(chunk.section_zh)) in section_rows:
            sums[i], counts[i] = vectors[section_rows[section]], 1
    for row, (chunk, _) in enumerate(sentences, start=len(sections)):
        sums[chunk] += vectors[row]
        counts[chunk] += 1
    means = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    for i, key in enumerate(chunk_keys):  # a chunk the store already holds keeps its stored vector
        if key in stored:
            means[i] = stored[key]
    return chunk_keys + keys[len(sections):], np.concatenate([means, vectors[len(sections):]])


def _write_document(settings, doc_id, chunks, sentences, keys, vectors) -> dict[str, str]:
    """The document's two data files, content-addressed, written whole before the registry names them."""
    table = json.dumps({"chunks": [c.to_json() for c in chunks],
                        "sentences": [{"chunk": i, **dataclasses.asdict(s)} for i, s in sentences],
                        "keys": keys}, ensure_ascii=False).encode("utf-8")
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    files = {}
    for key, ext, blob in (("table", "json", table), ("vectors", "npy", buffer.getvalue())):
        files[key] = f"{doc_id}-{hashlib.sha256(blob).hexdigest()[:12]}.{ext}"
        write_atomic(settings.data_dir / "docs" / files[key], blob)
    return files


def remove(settings: config.Settings, doc_id: str) -> dict:
    """Remove a document: the registry without it is committed first, then its files are deleted."""
    with store_lock(settings):
        registry = read_registry(settings)
        matches = [d for d in registry["documents"] if d["id"] == doc_id]
        if not matches:
            raise UserError(f"no document {doc_id!r}; 'rag docs' lists them")
        registry["documents"] = [d for d in registry["documents"] if d["id"] != doc_id]
        _publish(settings, registry)
        _remove_unreferenced(settings)
    return matches[0]


# --------------------------------------------------------------------------------------------------
# Loading


def _read_files(settings: config.Settings, record: dict) -> tuple[dict, np.ndarray]:
    paths = {k: settings.data_dir / "docs" / v for k, v in record["files"].items()}
    for key, path in paths.items():
        if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != record["files_sha256"][key]:
            raise UserError(f"{record['name']} ({record['id']}): its stored file {path.name} is missing or "
                            f"damaged; remove it and add it again")
    table = json.loads(paths["table"].read_text(encoding="utf-8"))
    return table, np.load(paths["vectors"], allow_pickle=False)


def load_documents(settings: config.Settings, dimension: int | None = None) -> DocumentsView | None:
    """The stored documents embedded by the current embedder (others are skipped with a warning); None
    when there are none."""
    chunks, sentences, chunk_vectors, sentence_vectors = [], [], [], []
    for record in documents(settings):
        if record.get("embedder") != settings.embedder or (dimension and record.get("dimension") != dimension):
            log.warning("%s (%s) was embedded with %s, not %s: not searched; remove it and add it again",
                        record["name"], record["id"], record.get("embedder"), settings.embedder)
            continue
        try:
            table, vectors = _read_files(settings, record)
        except UserError as error:
            log.warning("%s", error)
            continue
        offset, n = len(chunks), len(table["chunks"])
        chunks.extend(Chunk.from_json(row) for row in table["chunks"])
        sentences.extend((offset + row.pop("chunk"), Sentence(**{**row, "span": tuple(row["span"])}))
                         for row in table["sentences"])
        chunk_vectors.append(vectors[:n])
        sentence_vectors.append(vectors[n:])
    if not chunks:
        return None
    return DocumentsView(chunks, sentences, np.concatenate(chunk_vectors), np.concatenate(sentence_vectors))


def combined_index(index, settings: config.Settings):
    """The report's loaded index, plus the users' documents when there are any, as one ``LoadedIndex``.

    With no documents the report's own index is returned unchanged. Otherwise the report's vectors are
    read back from its FAISS index (never embedded again) and one in-memory index holds them all; a
    document sentence's one vector fills every language slot of ``sentence_vectors``."""
    from rag.index import IndexedSentence, LoadedIndex, make_faiss_index, resolve_index_type

    view = load_documents(settings, dimension=index.faiss_index.d)
    if view is None:
        return index
    report = index.faiss_index.reconstruct_n(0, index.faiss_index.ntotal)
    vectors = np.ascontiguousarray(np.concatenate([report, view.chunk_vectors]), dtype=np.float32)
    offset = len(index.chunks)
    vector_chunks = np.concatenate([index.vector_chunks, offset + np.arange(len(view.chunks))])
    languages = index.sentence_vectors.shape[1]
    sentence_vectors = np.concatenate([index.sentence_vectors,
                                       np.repeat(view.sentence_vectors[:, None, :], languages, axis=1)])
    sentences = index.sentences + [IndexedSentence(offset + i, s) for i, s in view.sentences]
    faiss_index = make_faiss_index(vectors, resolve_index_type(settings.index_type, len(vectors)))
    log.info("searching the report and %d passages of your documents (%d vectors)", len(view.chunks), len(vectors))
    return LoadedIndex(faiss_index, index.chunks + view.chunks, vector_chunks, sentences, sentence_vectors,
                       index.manifest)

"""The vector store behind rag/index.py: FAISS (default) and Milvus through milvus-lite, on the report's own
vectors; add/remove; reopening a collection; a Retriever on Milvus; and the one-line failures."""
from __future__ import annotations

import dataclasses
import socket

import numpy as np
import pytest

from rag import config
from rag.errors import SettingError, VectorStoreUnavailable, plain_error
from rag.index import load_index, open_vector_store
from rag.vectorstore import FaissStore, MilvusStore, content_keys


@pytest.fixture(scope="module")
def report(settings):
    """The committed index and every real vector it holds: 198 chunk vectors, then the sentence vectors."""
    index = load_index(settings)
    sentences = index.sentence_vectors.reshape(-1, index.sentence_vectors.shape[-1])
    vectors = np.concatenate([index.faiss_index.reconstruct_n(0, index.faiss_index.ntotal), sentences])
    return index, np.ascontiguousarray(vectors, dtype=np.float32)


def _milvus(settings, tmp_path, name: str = "rag.db") -> config.Settings:
    return dataclasses.replace(settings, vector_store=f"milvus:{tmp_path / name}")


def test_default_store_is_the_committed_faiss_index(settings, report):
    index, _ = report
    store = open_vector_store(settings, index=index.faiss_index)
    assert isinstance(store, FaissStore) and store.index is index.faiss_index  # wrapped as is: no rebuild
    assert len(store) == index.faiss_index.ntotal


def test_faiss_and_milvus_lite_give_the_same_top10(settings, report, tmp_path):
    """Every real vector of the report, searched with 300 real sentence vectors: the same rows, the same scores."""
    _, vectors = report
    queries = vectors[198::7][:300]
    faiss_store = open_vector_store(dataclasses.replace(settings, index_type="flat"), vectors)
    milvus_store = open_vector_store(_milvus(settings, tmp_path), vectors)
    assert isinstance(milvus_store, MilvusStore) and len(milvus_store) == len(faiss_store) == len(vectors)
    f_scores, f_rows = faiss_store.search(queries, 10)
    m_scores, m_rows = milvus_store.search(queries, 10)
    np.testing.assert_allclose(m_scores, f_scores, atol=1e-4)  # inner product in both
    tie = np.isclose(m_scores, f_scores, atol=1e-6)
    assert ((m_rows == f_rows) | tie).all()  # a different row only where two rows score the same (duplicates)
    assert milvus_store.kind == "flat"  # `auto` below FLAT_MAX_VECTORS: exact in Milvus too


def test_milvus_lite_hnsw_finds_the_exact_neighbours(settings, report, tmp_path):
    """With index_type=hnsw (as `auto` chooses past 50k vectors): HNSW M=32 in Milvus, near-exact here."""
    _, vectors = report
    queries = vectors[198::7][:300]
    _, exact = open_vector_store(dataclasses.replace(settings, index_type="flat"), vectors).search(queries, 10)
    store = open_vector_store(dataclasses.replace(_milvus(settings, tmp_path), index_type="hnsw"), vectors)
    assert store.kind == "hnsw" and store.client.describe_index(store.name, "vector")["params"]["M"] == 32
    _, found = store.search(queries, 10)
    assert np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)]) >= 0.97


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_add_and_remove(settings, report, tmp_path, backend):
    _, vectors = report
    base = vectors[:198]
    chosen = settings if backend == "faiss" else _milvus(settings, tmp_path)
    store = open_vector_store(chosen, base, [f"chunk-{i}" for i in range(len(base))])
    new = vectors[198:201]
    store.add(["new-a", "new-b", "new-c"], new)
    assert len(store) == 201
    _, rows = store.search(new, 1)
    assert rows[:, 0].tolist() == [198, 199, 200]  # each new vector finds itself, at the row it was added as
    store.remove(["new-b", "chunk-0"])
    assert len(store) == 199
    _, rows = store.search(np.stack([new[1], base[0]]), 5)
    assert 199 not in rows and 0 not in rows
    assert rows.shape == (2, 5) and (rows >= 0).all()
    _, rows = store.search(new[:1], 210)  # more than it holds: padded with -1, like faiss
    assert rows.shape == (1, 210) and (rows[0, :199] >= 0).all() and (rows[0, 199:] == -1).all()
    with pytest.raises(ValueError, match="already"):
        store.add(["new-a"], new[:1])


def test_reopening_a_milvus_lite_file_inserts_nothing(settings, report, tmp_path):
    _, vectors = report
    chosen = _milvus(settings, tmp_path)
    first = open_vector_store(chosen, vectors[:500])
    assert first.synced == {"inserted": 500, "removed": 0}
    again = open_vector_store(chosen, vectors[:500])
    assert again.name == first.name and again.synced == {"inserted": 0, "removed": 0}
    # a row the collection should not hold (a crashed writer's, say) is deleted; a lost one is put back
    first.client.insert(first.name, [{"key": "stray", "vector": vectors[600].tolist()}])
    first.client.delete(first.name, ids=[content_keys(vectors[:1])[0]])
    repaired = open_vector_store(chosen, vectors[:500])
    assert repaired.synced == {"inserted": 1, "removed": 1}
    assert open_vector_store(chosen, vectors[:400]).name != first.name  # other vectors: another collection


def test_a_collection_left_unindexed_is_finished_on_open(settings, report, tmp_path):
    """A creator that stopped after inserting some rows, before indexing: the next opener completes it."""
    from rag.vectorstore import _connect, collection_name

    _, vectors = report
    vectors = vectors[:300]
    keys, uri = content_keys(vectors), str(tmp_path / "rag.db")
    stopped = MilvusStore(_connect(uri), collection_name(keys, vectors.shape[1], "flat"), uri, keys, "flat")
    stopped._create(vectors.shape[1])
    stopped._insert(keys[:100], vectors[:100], upsert=False)
    store = open_vector_store(_milvus(settings, tmp_path), vectors)
    assert store.name == stopped.name and store.synced == {"inserted": 200, "removed": 0}
    assert store.client.list_indexes(store.name) == ["vector"]
    assert store.search(vectors[:3], 1)[1][:, 0].tolist() == [0, 1, 2]


def test_retriever_on_milvus_lite_finds_what_the_default_finds(settings, retriever, dev_questions, tmp_path):
    from rag.retrieval import Retriever

    on_milvus = Retriever(_milvus(settings, tmp_path), progress=False)
    assert isinstance(on_milvus.store, MilvusStore)
    assert retriever.store.index is retriever.index.faiss_index  # the default: the loaded file, as it is
    for row in dev_questions[:6]:
        query = retriever.embedder.encode_queries([row["question"]])
        assert on_milvus.dense_ranking(query, 50) == retriever.dense_ranking(query, 50)
        expected = [(h.chunk.id, round(h.score, 9)) for h in retriever.search(row["question"]).hits]
        assert [(h.chunk.id, round(h.score, 9)) for h in on_milvus.search(row["question"]).hits] == expected


@pytest.mark.parametrize("value", ["milvus", "milvus:", "milvus:rag", "milvus:ftp://host", "Faiss", "chroma:x"])
def test_a_bad_setting_says_what_is_accepted(monkeypatch, value):
    monkeypatch.setenv("RAG_VECTOR_STORE", value)
    with pytest.raises(SettingError) as error:
        config.load_settings()
    message = plain_error(error.value)
    assert "\n" not in message and "milvus:./rag.db" in message and "faiss" in message


def test_milvus_server_down_is_one_clear_line(settings, report):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    with pytest.raises(VectorStoreUnavailable) as error:
        open_vector_store(dataclasses.replace(settings, vector_store=f"milvus:{uri}"), report[1][:10])
    message = plain_error(error.value)
    assert "\n" not in message and f"cannot reach Milvus at {uri}" in message and "running" in message


def test_missing_packages_and_folders_name_the_fix(settings, report, monkeypatch, tmp_path):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "milvus_lite"
                        else real_find_spec(name, *a))
    with pytest.raises(VectorStoreUnavailable, match=r"needs milvus-lite: pip install"):
        open_vector_store(_milvus(settings, tmp_path), report[1][:10])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(VectorStoreUnavailable, match=r"needs pymilvus: pip install 'green-silk-rag\[milvus\]'"):
        open_vector_store(_milvus(settings, tmp_path), report[1][:10])
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)
    with pytest.raises(VectorStoreUnavailable, match="does not exist; create it first"):
        open_vector_store(_milvus(settings, tmp_path / "absent"), report[1][:10])


def test_bench_stores_measures_every_store_and_keeps_its_section(settings, tmp_path):
    """`rag bench --stores N` at a tiny N: three stores measured, section 6 written and kept by full runs."""
    from rag.bench.common import BenchOptions
    from rag.bench.common import keep_section
    from rag.bench.stores import HEADING, run_stores_section

    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## 5. Other\n\nkept\n", encoding="utf-8")
    section = run_stores_section(BenchOptions(quick=True, stores=1500, out=out), settings)["stores"]
    rows = {row["store"]: row for row in section["stores"]}
    assert list(rows) == ["FAISS flat", "FAISS HNSW", "Milvus (milvus-lite)"] and section["n"] == 1500
    assert rows["FAISS flat"]["recall"] == 1.0 and rows["Milvus (milvus-lite)"]["recall"] > 0.9
    assert rows["Milvus (milvus-lite)"]["reopen_inserted"] == 0
    text = out.read_text(encoding="utf-8")
    assert "kept" in text and HEADING in text and "| Milvus (milvus-lite) |" in text
    assert HEADING in keep_section(text, "# Benchmarks\n\n## 1. Pipeline\n", HEADING)

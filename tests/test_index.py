"""Index mechanics: manifest, staleness, corruption, atomic writes, the build lock."""
import dataclasses
import json
import shutil

import pytest

from rag import index as index_module
from rag.index import (FLAT_MAX_VECTORS, BuildInProgress, StaleIndex, auto_index_type, build_index, build_lock,
                       corpus_fingerprint, ensure_index, load_index)


def test_build_writes_manifest_and_loads(fast_settings):
    manifest = build_index(fast_settings, progress=False)
    stored = json.loads((fast_settings.index_dir / "manifest.json").read_text())
    assert stored == manifest
    for key in ("embedder", "embedder_revision", "dimension", "chunker_version", "corpus_sha256", "index_type",
                "built_at", "counts", "files_sha256"):
        assert key in manifest
    loaded = load_index(fast_settings)
    assert loaded.faiss_index.ntotal == manifest["counts"]["vectors"] == 2 * manifest["counts"]["chunks"]
    assert manifest["languages"] == ["zh", "en"]


def test_stale_corpus_is_detected_and_rebuilt(fast_settings, caplog):
    build_index(fast_settings, progress=False)
    path = fast_settings.index_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["corpus_sha256"]["zh.md"] = "0" * 64  # as if zh.md had been edited after the build
    path.write_text(json.dumps(manifest))
    with pytest.raises(StaleIndex, match="corpus changed"):
        load_index(fast_settings)
    ensure_index(fast_settings, progress=False)
    assert "rebuilding" in caplog.text
    load_index(fast_settings)


def test_other_model_or_index_type_is_stale(fast_settings):
    build_index(fast_settings, progress=False)
    with pytest.raises(StaleIndex, match="index_type"):
        load_index(dataclasses.replace(fast_settings, index_type="hnsw"))
    with pytest.raises(StaleIndex, match="embedder"):
        load_index(dataclasses.replace(fast_settings, embedder="minilm:all-MiniLM-L6-v2"))


@pytest.mark.parametrize("damage", ["truncate_index", "garbage_manifest", "delete_chunks"])
def test_broken_files_are_detected(fast_settings, damage):
    manifest = build_index(fast_settings, progress=False)
    directory = fast_settings.index_dir
    if damage == "truncate_index":
        path = directory / manifest["files"]["index"]
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage_manifest":
        (directory / "manifest.json").write_text("{not json")
    else:
        (directory / manifest["files"]["chunks"]).unlink()
    with pytest.raises(StaleIndex):
        load_index(fast_settings)
    assert ensure_index(fast_settings, progress=False).faiss_index.ntotal == manifest["counts"]["vectors"]


def test_crash_mid_build_leaves_old_index_usable(fast_settings, monkeypatch):
    old = build_index(fast_settings, progress=False)
    real_write = index_module.write_atomic

    def crash_on_manifest(path, data):
        if path.name == "manifest.json":
            raise RuntimeError("simulated crash")
        real_write(path, data)

    monkeypatch.setattr(index_module, "write_atomic", crash_on_manifest)
    monkeypatch.setattr(index_module, "make_faiss_index",
                        lambda vectors, kind: index_module.faiss.IndexFlatIP(vectors.shape[1]))  # a different index
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_index(fast_settings, progress=False)
    monkeypatch.undo()
    loaded = load_index(fast_settings)
    assert loaded.manifest["built_at"] == old["built_at"]
    assert loaded.faiss_index.ntotal == old["counts"]["vectors"]


def test_second_build_at_once_is_refused(fast_settings):
    with build_lock(fast_settings.index_dir):
        with pytest.raises(BuildInProgress):
            build_index(fast_settings, progress=False)


def test_a_reader_of_the_previous_manifest_still_finds_its_files(fast_settings, monkeypatch):
    """Another process publishes a new index between this reader's manifest and its files."""
    first = build_index(fast_settings, progress=False)
    real_read = index_module.read_manifest

    def read_then_another_build(index_dir):
        manifest = real_read(index_dir)
        monkeypatch.setattr(index_module, "read_manifest", real_read)
        build_index(dataclasses.replace(fast_settings, index_type="hnsw"), progress=False)
        return manifest

    monkeypatch.setattr(index_module, "read_manifest", read_then_another_build)
    loaded = load_index(fast_settings)
    assert loaded.manifest["built_at"] == first["built_at"] and loaded.manifest["index_type"] == "flat"
    assert index_module.read_manifest(fast_settings.index_dir)["index_type"] == "hnsw"


def test_generations_before_the_previous_one_are_removed(fast_settings):
    built = [build_index(dataclasses.replace(fast_settings, index_type=kind), progress=False)
             for kind in ("flat", "hnsw", "ivf")]
    stored = {p.name for p in fast_settings.index_dir.glob("index-*.faiss")}
    assert stored == {built[1]["files"]["index"], built[2]["files"]["index"]}


def test_the_corpus_is_hashed_once_per_version(settings, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    shutil.copytree(settings.corpus_dir, corpus)
    local = dataclasses.replace(settings, corpus_dir=corpus)
    hashed = []
    real_hash = index_module.sha256_file
    monkeypatch.setattr(index_module, "sha256_file", lambda path: hashed.append(path.name) or real_hash(path))
    first = corpus_fingerprint(local)
    for _ in range(5):  # the app checks the index on every rerun
        assert corpus_fingerprint(local) == first
    assert sorted(hashed) == sorted(first)
    with open(corpus / "zh.md", "a", encoding="utf-8") as handle:
        handle.write("\n")
    assert corpus_fingerprint(local)["zh.md"] != first["zh.md"]


def test_auto_index_type_by_size():
    assert auto_index_type(0) == "flat"
    assert auto_index_type(198) == "flat"
    assert auto_index_type(FLAT_MAX_VECTORS) == "flat"
    assert auto_index_type(FLAT_MAX_VECTORS + 1) == "hnsw"
    assert auto_index_type(1_000_000) == "hnsw"
    with pytest.raises(ValueError):
        auto_index_type(-1)


def test_build_chooses_the_index_type_by_size(fast_settings, monkeypatch):
    auto = dataclasses.replace(fast_settings, index_type="auto")
    assert build_index(auto, progress=False)["index_type"] == "flat"
    assert load_index(auto).manifest["index_type"] == "flat"
    monkeypatch.setattr(index_module, "FLAT_MAX_VECTORS", 10)  # as if the report were a large corpus
    manifest = build_index(auto, progress=False)
    assert manifest["index_type"] == "hnsw"
    assert load_index(auto).faiss_index.ntotal == manifest["counts"]["vectors"]

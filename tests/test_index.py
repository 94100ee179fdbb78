"""Index mechanics: manifest, staleness, corruption, atomic writes, the build lock."""
import dataclasses
import json

import pytest

from rag import index as index_module
from rag.index import BuildInProgress, StaleIndex, build_index, build_lock, ensure_index, load_index


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
    real_write = index_module._write_atomic

    def crash_on_manifest(path, data):
        if path.name == "manifest.json":
            raise RuntimeError("simulated crash")
        real_write(path, data)

    monkeypatch.setattr(index_module, "_write_atomic", crash_on_manifest)
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

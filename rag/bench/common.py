"""What every section of ``rag bench`` shares: its options, percentiles, memory and load readings."""
from __future__ import annotations

import dataclasses
import datetime
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

from rag import config
from rag.embedding import package_version

DEFAULT_OUT = config.PROJECT_ROOT / "docs" / "benchmarks.md"
DEFAULT_SCALES = (10_000, 100_000)
QUICK_SCALES = (2_000,)  # a quick run (the tests) only checks that every measurement works
LIBRARIES = ("torch", "faiss-cpu", "sentence-transformers", "llama_cpp_python", "numpy", "transformers",
             "bm25s", "jieba", "matplotlib")


@dataclasses.dataclass
class BenchOptions:
    quick: bool = False  # tiny sizes, extractive answers, no language model: for the tests
    scales: tuple[int, ...] = ()  # corpus sizes added to the defaults (e.g. 1_000_000)
    generators: bool = False  # also transformers fp32 / bf16 / torch.compile (slow)
    concurrency_local: bool = False  # also the concurrency test with the local generator (slow)
    serve: bool = False  # only section 5: a `rag serve` process over HTTP (rag/bench/serve.py)
    stores: int | None = None  # only section 6: FAISS and Milvus vector stores at this size (rag/bench/stores.py)
    out: Path = DEFAULT_OUT
    questions: int | None = None  # first N development questions (default: all; quick: 3)
    generator: str | None = None  # generator of the stage measurements (default: the configured one)
    json_out: Path | None = None
    seed: int = 0

    @property
    def scale_sizes(self) -> list[int]:
        return sorted(set(QUICK_SCALES if self.quick else DEFAULT_SCALES) | set(self.scales))


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def percentiles(values) -> dict:
    values = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return {"n": 0, "p50": None, "p95": None}
    return {"n": len(values), "p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def rss_bytes() -> int:
    """Current resident set size (Linux /proc; elsewhere the peak, the best available)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def say(text: str = "") -> None:
    print(text, flush=True)


def fmt(value, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value:,.{digits}f}{unit}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = None
    info = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable_cores(),
        "ram_gb": round(ram / 2**30, 1) if ram else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": {name: package_version(name, "not installed") for name in LIBRARIES},
        "load_average_start": load_average(),
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import faiss

        info["faiss_threads"] = faiss.omp_get_max_threads()
    except (ImportError, AttributeError):
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def replace_section(text: str, heading: str, section: list[str]) -> str:
    """``text`` with its section under ``heading`` replaced by ``section`` (or the section added at the end)."""
    start = text.find(heading)
    if start < 0:
        return text.rstrip() + "\n\n" + "\n".join(section).rstrip() + "\n"
    end = text.find("\n## ", start + len(heading))
    rest = text[end + 1:] if end >= 0 else ""
    return text[:start] + "\n".join(section).rstrip() + "\n" + ("\n" + rest if rest else "")


def keep_section(old: str, new: str, heading: str) -> str:
    """A freshly rendered report keeps the section under ``heading`` that the old one had: the sections a
    full run does not measure (``rag bench --serve``, ``--stores``) survive it."""
    start = old.find(heading)
    if start < 0 or heading in new:
        return new
    end = old.find("\n## ", start + len(heading))
    return replace_section(new, heading, (old[start:end] if end >= 0 else old[start:]).rstrip().split("\n"))

"""The stable contract of the ``rag`` command line, with the real models and the committed index.

Most checks call ``rag.cli.main`` in-process (the embedder then loads once per test session); a few run
the real ``rag`` console script and ``python -m rag`` as subprocesses, which is where stdout purity is
really tested (in-process, pytest owns the logging handlers).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.cli import main

DATA = Path(__file__).parent / "data"
RAILWAY_QUESTION = "蒙内铁路的桥梁为什么设计得那么高？"
RAILWAY_CHUNK = "c-1-2-1-b1-1-001"
KAROT_QUESTION = "When was the Karot Hydropower Station put into operation?"
KAROT_CHUNK = "c-1-3-1-b4-1-001"
RESULT_KEYS = {"chunk_id", "passage_ids", "score", "section", "zh", "en"}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def rag_executable() -> str:
    beside = Path(sys.executable).with_name("rag")
    return str(beside) if beside.exists() else (shutil.which("rag") or pytest.skip("no rag console script"))


def run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, encoding="utf-8", timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def one_json_object(stdout: str) -> dict:
    """stdout must hold exactly one JSON object on one line and nothing else."""
    lines = stdout.splitlines()
    assert len(lines) == 1, f"expected one line of JSON on stdout, got {len(lines)}: {stdout[:500]!r}"
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return obj


def check_search_row(row: dict, question: str, k: int) -> None:
    assert {"question", "results"} <= set(row)
    assert row["question"] == question
    assert len(row["results"]) == k
    for result in row["results"]:
        assert RESULT_KEYS <= set(result), set(result)
        assert isinstance(result["chunk_id"], str) and result["chunk_id"]
        assert isinstance(result["passage_ids"], list) and result["passage_ids"]
        assert isinstance(result["score"], float)
        assert result["zh"] and result["en"] and result["section"]
    scores = [r["score"] for r in row["results"]]
    assert scores == sorted(scores, reverse=True)


# --- search ---------------------------------------------------------------------------------------------

def test_search_json_railway_first(capsys):
    rc, out, _ = cli(capsys, "search", RAILWAY_QUESTION, "--json", "-k", "3")
    assert rc == 0
    row = one_json_object(out)
    check_search_row(row, RAILWAY_QUESTION, 3)
    first = row["results"][0]
    assert first["chunk_id"] == RAILWAY_CHUNK
    assert "长颈鹿" in first["zh"] and "giraffe" in first["en"].lower()


def test_search_human_output(capsys):
    rc, out, _ = cli(capsys, "search", KAROT_QUESTION, "-k", "2")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"[1] {KAROT_CHUNK}"), out[:300]
    assert sum(line.startswith("[") for line in lines) == 2


def test_search_cuts_an_overlong_question(capsys, settings):
    question = "卡洛特水电站" * 1000  # 6,000 characters
    rc, out, _ = cli(capsys, "search", question, "--json", "-k", "2")
    assert rc == 0
    row = one_json_object(out)
    assert len(row["question"]) == settings.max_question_chars
    assert len(row["results"]) == 2


def test_batch(capsys, tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_bytes(b"\n".join([
        json.dumps({"id": "a", "question": RAILWAY_QUESTION, "tag": [1, "x"]}, ensure_ascii=False).encode(),
        b'{"id": "broken", "question": ',  # invalid JSON
        b'{"id": "bytes", "question": "\xff\xfe caf\xe9"}',  # invalid UTF-8
        b"",  # blank lines are skipped
        b'{"id": "noq", "text": "no question field"}',
        b'{"id": "empty", "question": ""}',
        b'{"id": "blank", "question": " \\t\\u3000 "}',
        b'{"id": "num", "question": 42}',
        json.dumps({"id": "b", "question": KAROT_QUESTION}).encode(),
    ]) + b"\n")
    rc, out, err = cli(capsys, "search", "--batch", str(path), "-k", "2", "--json")
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 8, out  # one output line per non-blank input line
    first, *errors, last = rows
    check_search_row(first, RAILWAY_QUESTION, 2)
    assert first["id"] == "a" and first["tag"] == [1, "x"]  # other fields are copied through
    assert first["results"][0]["chunk_id"] == RAILWAY_CHUNK
    for row in errors:
        assert isinstance(row.get("error"), str) and row["error"], row
        assert "results" not in row
    assert [row["line"] for row in errors] == [2, 3, 5, 6, 7, 8]
    assert "JSON" in errors[0]["error"] and "UTF-8" in errors[1]["error"] and "question" in errors[2]["error"]
    assert "empty" in errors[3]["error"] and "empty" in errors[4]["error"]
    assert errors[3]["id"] == "empty" and errors[4]["id"] == "blank"
    check_search_row(last, KAROT_QUESTION, 2)  # the run went on after the bad lines
    assert last["id"] == "b" and last["results"][0]["chunk_id"] == KAROT_CHUNK


# --- errors ---------------------------------------------------------------------------------------------

def assert_plain_error(rc: int, out: str, err: str) -> str:
    assert rc == 2
    assert out == ""
    message = [line for line in err.splitlines() if line.startswith("rag:")]
    assert len(message) == 1, err
    assert "Traceback" not in err
    return message[0]


def test_search_needs_question_or_batch(capsys):
    assert_plain_error(*cli(capsys, "search"))
    assert_plain_error(*cli(capsys, "search", "both", "--batch", "x.jsonl"))


def test_search_missing_batch_file(capsys, tmp_path):
    missing = tmp_path / "nowhere" / "questions.jsonl"
    message = assert_plain_error(*cli(capsys, "search", "--batch", str(missing), "--json"))
    assert str(missing) in message


def test_eval_missing_question_file(capsys, tmp_path):
    missing = tmp_path / "qa.jsonl"
    message = assert_plain_error(*cli(capsys, "eval", "--qa", str(missing)))
    assert str(missing) in message


@pytest.mark.parametrize("k", ["0", "-1"])
def test_search_rejects_non_positive_k(capsys, k):
    try:
        rc, out, err = cli(capsys, "search", KAROT_QUESTION, "--json", "-k", k)
    except SystemExit as exit_:  # an argparse type check is a fine way to refuse it
        assert exit_.code == 2
        return
    if rc == 0:
        assert one_json_object(out)["results"] == [], f"-k {k} returned {len(json.loads(out)['results'])} results"
    else:
        assert_plain_error(rc, out, err)


def test_eval_malformed_question_file_is_a_plain_error(capsys, tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "x", "evidence": "y"}\n{not json\n', encoding="utf-8")
    try:
        result = cli(capsys, "eval", "--qa", str(path))
    except Exception as error:  # noqa: BLE001
        pytest.fail(f"traceback instead of a plain error: {error!r}")
    assert_plain_error(*result)


# --- build ----------------------------------------------------------------------------------------------

def test_build_up_to_date_is_quick_and_does_not_rebuild(settings, tmp_path):
    from rag.index import StaleIndex, load_index

    manifest_path = settings.index_dir / "manifest.json"
    try:
        load_index(settings)
    except StaleIndex as reason:  # do not let `rag build` rewrite the committed index from a test
        pytest.fail(f"the committed index is stale ({reason}); not running rag build")
    before = manifest_path.read_text(encoding="utf-8")
    mtimes = {p.name: p.stat().st_mtime_ns for p in settings.index_dir.iterdir()}
    start = time.perf_counter()
    proc = run([rag_executable(), "build"], cwd=tmp_path, timeout=120)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stderr
    assert proc.stdout == ""
    assert elapsed < 30, f"rag build on an up-to-date index took {elapsed:.1f} s"
    after = manifest_path.read_text(encoding="utf-8")
    assert json.loads(after)["built_at"] == json.loads(before)["built_at"]
    assert after == before
    assert {p.name: p.stat().st_mtime_ns for p in settings.index_dir.iterdir()} == mtimes


# --- eval -----------------------------------------------------------------------------------------------

def test_eval_json_on_small_file(capsys):
    rc, out, _ = cli(capsys, "eval", "--qa", str(DATA / "cli_eval_small.jsonl"), "--json")
    assert rc == 0
    report = one_json_object(out)
    assert {"groups", "latency_ms"} <= set(report)
    assert report["groups"]["all"]["n"] == 2  # the third question has no evidence
    assert report["groups"]["all"]["recall@5"] == 1.0, report["misses"]
    assert set(report["groups"]) == {"all", "zh", "en"}
    assert report["latency_ms"]["p50"] > 0 and report["latency_ms"]["p95"] >= report["latency_ms"]["p50"]


def test_eval_table_on_small_file(capsys):
    rc, out, _ = cli(capsys, "eval", "--qa", str(DATA / "cli_eval_small.jsonl"), "-k", "5")
    assert rc == 0
    assert "recall@5" in out
    assert {line.split()[0] for line in out.splitlines()[2:]} == {"all", "zh", "en"}


# --- real processes ---------------------------------------------------------------------------------------

def test_rag_console_script_search(tmp_path):
    proc = run([rag_executable(), "search", RAILWAY_QUESTION], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0].startswith(f"[1] {RAILWAY_CHUNK}"), proc.stdout[:500]
    assert "Traceback" not in proc.stderr


def test_python_dash_m_rag_search_json(tmp_path):
    proc = run([sys.executable, "-m", "rag", "search", KAROT_QUESTION, "--json", "-k", "3"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = one_json_object(proc.stdout)  # logs and progress bars went to stderr, not here
    check_search_row(row, KAROT_QUESTION, 3)
    assert row["results"][0]["chunk_id"] == KAROT_CHUNK
    assert "Traceback" not in proc.stderr


# --- conversations ----------------------------------------------------------------------------------

KAROT_FR = "Quand la centrale hydroélectrique de Karot est-elle entrée en service ?"
KAROT_FOLLOW_UP = "Et quelle est sa puissance installée ?"


def conversation_file(tmp_path: Path) -> Path:
    path = tmp_path / "conversations.jsonl"
    lines = [
        {"id": "c1", "turns": [{"question": KAROT_FR}, {"question": KAROT_FOLLOW_UP}]},
        {"id": "s1", "question": RAILWAY_QUESTION},
        {"id": "bad", "turns": [{"text": "no question here"}]},
    ]
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")
    return path


def test_search_batch_conversation_lines(capsys, tmp_path):
    rc, out, _ = cli(capsys, "search", "--batch", str(conversation_file(tmp_path)), "-k", "3", "--json")
    assert rc == 0
    conversation, single, bad = [json.loads(line) for line in out.splitlines()]
    check_search_row(conversation, KAROT_FOLLOW_UP, 3)  # the last turn, in the usual shape
    assert conversation["id"] == "c1" and "Karot" in conversation["standalone"]
    assert conversation["results"][0]["chunk_id"] == KAROT_CHUNK
    assert conversation["turns"] == [{"question": KAROT_FR, "standalone": KAROT_FR}]
    check_search_row(single, RAILWAY_QUESTION, 3)
    assert bad["id"] == "bad" and bad["line"] == 3 and '"question"' in bad["error"]


def test_ask_batch_conversation_lines(capsys, tmp_path):
    rc, out, _ = cli(capsys, "ask", "--batch", str(conversation_file(tmp_path)), "--json", "--generator", "extractive")
    assert rc == 0
    conversation, single, bad = [json.loads(line) for line in out.splitlines()]
    assert conversation["question"] == KAROT_FOLLOW_UP and conversation["language"] == "fr"
    assert "Karot" in conversation["standalone"] and not conversation["refused"]
    assert "720,000" in conversation["answer"]  # the capacity, from the passage the first turn cited
    assert conversation["citations"][0]["chunk_id"] == KAROT_CHUNK
    [first] = conversation["turns"]
    assert first["question"] == first["standalone"] == KAROT_FR and "2022" in first["answer"]
    assert single["standalone"] == single["question"] == RAILWAY_QUESTION
    assert "error" in bad


def test_chat_through_stdin(tmp_path):
    """`rag chat` as a user drives it: a question, a follow-up, /sources, /new, a command typo, Ctrl-D."""
    script = "\n".join(["When was the Karot Hydropower Station put into operation?",
                        "And what is its installed capacity?", "/sources", "/new", "/oops",
                        "蒙内铁路全长多少公里？"]) + "\n"
    done = subprocess.run([rag_executable(), "chat", "--generator", "extractive"], input=script, cwd=tmp_path,
                          capture_output=True, text=True, encoding="utf-8", timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.count("Understood as:") == 1  # only the follow-up was rewritten
    understood = next(line for line in out.splitlines() if line.startswith("Understood as:"))
    assert "Karot" in understood
    assert "June 2022" in out and "720,000" in out and "471" in out
    assert f"({KAROT_CHUNK}, verified)" in out  # citations listed after each answer
    assert "(new conversation)" in out and "unknown command /oops" in out
    sources = out.split("720,000", 1)[1]
    assert "卡洛特水电站" in sources and "During construction" in sources  # /sources shows whole passages
    assert "Ctrl-D" in done.stderr and "Traceback" not in done.stderr

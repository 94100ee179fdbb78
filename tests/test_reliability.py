"""Bad input never crashes and never corrupts: questions, batch files, CLI errors."""
import json

import pytest

from rag import cli
from rag.answer import EXTRACTIVE, Pipeline
from rag.questions import QuestionError, clean_question

ODD_QUESTIONS = {
    "one_char": "铁",
    "emoji_only": "🌍🌱🚄",
    "mixed_scripts": "蒙内铁路 railway длина 長さ الطول?",
    "control_chars": "蒙内铁路\x00\x07\x1b[31m全长多少公里？\u200b",
    "html": "<b>蒙内铁路</b><script>alert(1)</script>",
    "sql": "'; DROP TABLE chunks; --",
    "markdown": "# title\n```\ncode\n```\n| a | b |",
    "huge": "蒙内铁路全长多少公里？" * 10_000,  # ~100 KB
}


@pytest.fixture(scope="module")
def pipeline(settings):
    return Pipeline(settings)


@pytest.mark.parametrize("name", sorted(ODD_QUESTIONS))
def test_odd_questions_get_an_answer_or_refusal(pipeline, name):
    answer = pipeline.ask(ODD_QUESTIONS[name], generator=EXTRACTIVE)
    assert answer.answer
    assert answer.refused or answer.citations
    assert len(answer.question) <= pipeline.settings.max_question_chars


@pytest.mark.parametrize("question", ["", "   ", "\n\t", "\x00\x01"])
def test_empty_questions_are_refused_plainly(question):
    with pytest.raises(QuestionError, match="empty"):
        clean_question(question, 2000)


def test_long_question_is_cut_with_a_notice(caplog):
    assert len(clean_question("a" * 5000, 2000)) == 2000
    assert "cut" in caplog.text


def test_batch_with_bad_lines_continues(tmp_path, capsys):
    batch = tmp_path / "questions.jsonl"
    batch.write_bytes(b'{"id": 1, "question": "\xe8\x92\x99\xe5\x86\x85\xe9\x93\x81\xe8\xb7\xaf\xe5\x85\xa8\xe9\x95\xbf\xe5\xa4\x9a\xe5\xb0\x91\xef\xbc\x9f"}\n'
                      b'{"id": 2, "question": "\xff\xfe broken"}\n'
                      b'not json at all\n'
                      b'{"id": 4}\n'
                      b'{"id": 5, "question": "   "}\n'
                      b'{"id": 6, "question": "How long is the Mombasa-Nairobi railway?"}\n')
    assert cli.main(["ask", "--batch", str(batch), "--json", "--generator", EXTRACTIVE]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 6
    assert [("error" in r) for r in rows] == [False, True, True, True, True, False]
    assert rows[0]["id"] == 1 and rows[0]["citations"] and rows[5]["id"] == 6
    assert rows[4]["id"] == 5 and "empty" in rows[4]["error"]


def test_cli_errors_are_one_plain_line(capsys):
    assert cli.main(["ask"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag: ") and "Traceback" not in err
    assert cli.main(["ask", "--batch", "/nonexistent/file.jsonl"]) == 2
    assert "/nonexistent/file.jsonl" in capsys.readouterr().err


def test_bad_generator_spec_is_a_plain_error(capsys):
    assert cli.main(["ask", "蒙内铁路全长多少公里？", "--generator", "nonsense"]) in (0, 2)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err

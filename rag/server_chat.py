"""The OpenAI chat shape of ``rag serve``, as pure functions (no server, no models): a request's messages
read as a question and its history, an Answer written as a reply with a "Sources" list, and the text a
streaming client sees while the model writes.

History comes from the messages' text alone, never by answering earlier turns again: each earlier user
message is resolved in order (``followup.resolve``, code only), and each assistant reply gives the answer
text and the chunk ids of its Sources list, which is how this server writes them.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Sequence

from rag.errors import QuestionError
from rag.prompts import NOT_FOUND

MODEL_ID = "green-silk-rag"  # answers with the server's configured generator
EXTRACTIVE_MODEL_ID = "green-silk-rag-extractive"  # answers by quoting the evidence: no language model
SOURCES_HEADING = "**Sources**"
CORRECTION = "\n\n---\n\n"  # what was streamed did not pass the checks: the checked answer follows the rule
CHUNK_ID_RE = re.compile(r"`(c-[\w.\-]+)`")
# Where the live text stops until the answer is checked: after the first sentence, markers go in ([1]).
SENTENCE_END_RE = re.compile(r"[。！？]|[.!?](?=\s)")
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class BadRequest(ValueError):
    """The request cannot be answered as sent (HTTP 400); the message says why in one line."""


@dataclasses.dataclass(frozen=True)
class ChatRequest:
    model: str
    question: str
    earlier: list[tuple[str, str]]  # (user message, the assistant's reply to it), oldest first
    stream: bool


def text_of(content, where: str) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        if any(p.get("type") != "text" or not isinstance(p.get("text"), str) for p in content):
            raise BadRequest(f"{where}: only text content parts can be read")
        return "\n".join(p["text"] for p in content)
    if content is None:
        return ""
    raise BadRequest(f"{where}: content must be a string or a list of text parts")


def parse_chat(body, models: Collection[str]) -> ChatRequest:
    """The question (the last user message) and the earlier user/assistant turns of a chat request."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model", MODEL_ID)
    if not isinstance(model, str) or model not in models:
        raise BadRequest(f"unknown model {model!r}; use one of: {', '.join(sorted(models))}")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream must be true or false")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    turns: list[tuple[str, str]] = []  # (role, text) of user and assistant messages
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise BadRequest(f"messages[{number}] needs a role: one of {', '.join(sorted(ROLES))}")
        if message["role"] in ("user", "assistant"):
            turns.append((message["role"], text_of(message.get("content"), f"messages[{number}]")))
    if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
        raise BadRequest("the last message must be the user's question")
    return ChatRequest(model, turns[-1][1], pair_turns(turns[:-1]), stream)


def pair_turns(turns: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each user message with the assistant reply after it ("" when none); replies without a question
    before them are dropped."""
    pairs: list[tuple[str, str]] = []
    for role, text in turns:
        if role == "user":
            pairs.append((text, ""))
        elif pairs and not pairs[-1][1]:
            pairs[-1] = (pairs[-1][0], text)
    return pairs


def read_reply(text: str, known_ids: Collection[str]) -> tuple[str, tuple[str, ...]]:
    """(the answer, the chunk ids it cited) from a reply this server wrote; a reply written otherwise is
    all answer, citing nothing."""
    body, _, sources = text.partition("\n\n" + SOURCES_HEADING)
    answer = body.rsplit(CORRECTION, 1)[-1].strip()
    cited = tuple(dict.fromkeys(i for i in CHUNK_ID_RE.findall(sources) if i in known_ids))
    return answer, cited


def history_of(earlier: Sequence[tuple[str, str]], names, known_ids: Collection[str], max_chars: int,
               keep: int) -> list:
    """``HistoryTurn``s of the earlier turns, the same the app and ``rag chat`` build: each question cleaned
    and resolved against the turns before it; the last ``keep`` are returned."""
    from rag.followup import HistoryTurn, resolve
    from rag.questions import clean_question

    history: list = []
    for question, reply in earlier:
        try:
            question = clean_question(question, max_chars)
        except QuestionError:
            continue  # an empty earlier message says nothing to resolve against
        resolution = resolve(question, history, names)
        answer, cited = read_reply(reply, known_ids)
        history.append(HistoryTurn(resolution.question, resolution.standalone, answer, cited, resolution.subject))
    return history[-keep:] if keep else []


def sources_markdown(citations: Sequence[dict]) -> str:
    """The cited passages as a Markdown list a plain chat client shows: marker, section, the supporting
    sentence in Chinese and English, chunk id and whether it was verified."""
    if not citations:
        return ""
    lines = [SOURCES_HEADING, ""]
    for c in citations:
        section = c.get("section_en") or c.get("section") or ""
        badge = "verified" if c.get("supported") else "not verified"
        lines.append(f"[{c['marker']}] {section} (`{c['chunk_id']}`, {badge})")
        lines.append(f"  > {c['sentence_zh']}")
        if c.get("sentence_en"):
            lines.append(f"  > {c['sentence_en']}")
    return "\n".join(lines)


def reply_text(row: dict) -> str:
    """The reply's content: the answer with its [n] markers, then the Sources list."""
    sources = sources_markdown(row["citations"])
    return f"{row['answer']}\n\n{sources}" if sources else row["answer"]


class LiveText:
    """What a streaming client is sent while the model writes, so that the text it shows ends as the
    checked answer: the first attempt's tokens go out live up to the end of its first sentence (where the
    first citation marker goes); the rest waits for the checks. ``finish`` sends what completes the
    checked answer, or, when the checked answer does not continue what was sent (a retry, a quote), a
    rule and the checked answer after it."""

    def __init__(self) -> None:
        self.draft = ""
        self.sent = ""
        self.live = True

    def token(self, piece: str) -> str:
        if not self.live:
            return ""
        self.draft += piece
        text = self.draft.lstrip()
        if NOT_FOUND.startswith(text.strip()) or text.startswith(NOT_FOUND):
            return ""  # the model's "no answer" word is the pipeline's to read, not the reader's
        end = SENTENCE_END_RE.search(text)
        release = text[:end.end()] if end else text
        delta, self.sent = release[len(self.sent):], release
        if end:
            self.live = False  # the first sentence is out; the rest waits for its markers
        return delta

    def reset(self) -> None:
        self.live = False

    def finish(self, answer: str) -> str:
        if answer.startswith(self.sent):
            return answer[len(self.sent):]
        return CORRECTION + answer

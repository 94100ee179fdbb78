"""The errors a user can act on, and the one line each becomes.

Every error here says in plain words what happened and what to do; the CLI prints it as ``rag: …`` and
the app shows it, never a traceback. This module imports nothing heavy, so anything can import it.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; printed as one plain line, never as a traceback."""


class SettingError(UserError, ValueError):
    """A ``RAG_*`` environment variable holds a value its setting cannot take."""


class QuestionError(UserError, ValueError):
    """The question cannot be asked as given; the message says why in plain words."""


class QuestionFileError(UserError, ValueError):
    """A questions file cannot be read; the message names the file and line."""


class EmbedderUnavailable(UserError, RuntimeError):
    """The model cannot be loaded; the message says what to install or set."""


class StaleIndex(UserError, RuntimeError):
    """The stored index is missing, unreadable or built from other data; the message says why."""


class BuildInProgress(UserError, RuntimeError):
    """Another process is building the index right now."""


class GeneratorUnavailable(UserError, RuntimeError):
    """The generator cannot answer; the message says what to install, set or check."""


class VectorStoreUnavailable(UserError, RuntimeError):
    """The vector store (RAG_VECTOR_STORE) cannot be opened or used; the message says what to install or check."""


KNOWN_ERRORS = (UserError,)  # what the CLI and the app show as the error's own message


def plain_error(error: Exception) -> str:
    """One line for the user: our own errors say what to do; anything else names its type."""
    if isinstance(error, KNOWN_ERRORS):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"

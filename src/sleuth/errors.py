"""Exceptions that carry a message a user can act on (the CLI prints them without a traceback)."""


class SleuthError(Exception):
    """Base class: something the user can fix (bad input, missing file, wrong index)."""


class CorpusError(SleuthError):
    """A corpus file is malformed; the message names the file and line."""


class IndexFormatError(SleuthError):
    """An index folder is missing, half-written, from another version, or for another corpus."""


class QueryError(SleuthError):
    """A query or search parameter is invalid (empty, too long, k out of range)."""


class DocumentNotFound(SleuthError, KeyError):
    """No document with the requested id exists in the index."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "document not found"


class LLMError(SleuthError):
    """An LLM backend failed after its retries, or is misconfigured."""

    status: int = 0  # the HTTP status, when a server refused the request

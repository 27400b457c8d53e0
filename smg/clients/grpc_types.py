"""What the gateway sends to and hears from a gRPC worker, independent of the engine.

``GenParams`` is filled once per request by the pipeline; each engine client maps it to
its own proto. Streams come back as ``Chunk`` (new token ids of one choice, cumulative
counts) and ``Complete`` (one per choice, last).
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Chunk", "Complete", "GenParams", "WorkerCallError", "http_status"]


@dataclass
class GenParams:
    request_id: str
    input_ids: list[int]
    original_text: str = ""
    stream: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0
    max_new_tokens: int | None = None
    min_new_tokens: int = 0
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    no_stop_trim: bool = False
    n: int = 1
    seed: int | None = None
    json_schema: str | None = None
    regex: str | None = None
    return_logprob: bool = False
    top_logprobs: int = 0
    bootstrap_host: str | None = None
    bootstrap_port: int | None = None
    bootstrap_room: int | None = None
    kv_transfer_params_json: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Logprobs:
    token_logprobs: list[float]
    token_ids: list[int]
    top: list[tuple[list[float], list[int]]]


@dataclass
class Chunk:
    index: int
    token_ids: list[int]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    logprobs: Logprobs | None = None


@dataclass
class Complete:
    index: int
    finish_reason: str
    matched_stop: int | str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    output_ids: list[int]
    logprobs: Logprobs | None = None
    kv_transfer_params_json: str | None = None


# A worker's gRPC status (by name) as the HTTP status the client gets (SMG's table,
# except that the worker's own failures are a 502, not a 500: the gateway did not fail).
_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429, "UNIMPLEMENTED": 501, "DEADLINE_EXCEEDED": 504,
}


def http_status(code_name: str) -> int:
    """The HTTP status for a worker call that ended with gRPC status ``code_name``."""
    return _HTTP_STATUS.get(code_name, 502)


# what names a host in a worker's error text: URLs, gRPC's "ipv4:1.2.3.4:5", IPv4 and
# bracketed IPv6 addresses with or without a port, Python's "('1.2.3.4', 5)"
_ADDRESS = re.compile(
    r"[a-z][a-z0-9+.-]*://\S+|ipv[46]:\S+|\(?'?\b\d{1,3}(?:\.\d{1,3}){3}\b'?(?:, ?\d+\)|:\d+)?|\[[0-9a-f:.]+\](?::\d+)?",
    re.IGNORECASE,
)


class WorkerCallError(Exception):
    """A worker call failed. ``retryable`` when nothing reached the client yet could be
    retried on another worker (unavailable, internal error before the first chunk).
    ``status`` is the HTTP status for the client: a 4xx (the worker refused the request
    itself, e.g. a prompt over its context) is the client's error, never the worker's."""

    def __init__(self, message: str, *, status: int = 502, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable

    def client_message(self) -> str:
        """The message for the client: without the worker's URL or any address in the
        worker's details (the log keeps them, redacted), so an error never tells a client
        where the gateway's workers are."""
        text = self.message
        if text.startswith("worker ") and ": " in text:
            name, rest = text[len("worker "):].split(": ", 1)
            text = rest if _ADDRESS.search(name) else text  # a worker id may stay
        return _ADDRESS.sub("<worker>", text)

    @property
    def worker_fault(self) -> bool:
        """Does this count against the worker (its circuit breaker)? Not for a refusal
        of the request itself (4xx other than 429) or an unimplemented call."""
        status = self.status
        return status == 429 or (status >= 500 and status != 501)

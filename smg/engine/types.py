"""The reference engine's vocabulary: what goes in, what comes out, what fails.

Transports (``smg.engine.grpc``, ``smg.engine.http``) translate their wire formats to
``GenerateInput`` and the stream of ``TokenChunk`` / ``Finished`` back. Exceptions::

    EngineError            status_code (HTTP-style) + message; bad input, injected faults,
     |                     PD rendezvous failures
     +- EngineDisconnect   an injected "disconnect_mid_stream": the transport should drop
                           the stream/connection instead of reporting an error
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EngineDisconnect",
    "EngineError",
    "Finished",
    "GenerateInput",
    "SamplingParams",
    "TokenChunk",
    "parse_fault",
]


@dataclass
class SamplingParams:
    """Sampling parameters; only those that change a deterministic output have effect."""

    max_new_tokens: int | None = None
    stop_token_ids: tuple[int, ...] = ()
    stop: tuple[str, ...] = ()  # stop strings, matched on the decoded output
    ignore_eos: bool = False
    min_new_tokens: int = 0
    n: int = 1
    skip_special_tokens: bool = True
    no_stop_trim: bool = False
    stream_interval: int | None = None  # tokens per chunk; None: the worker's setting
    # accepted, no effect on a deterministic model
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerateInput:
    rid: str
    input_ids: list[int]
    params: SamplingParams = field(default_factory=SamplingParams)
    stream: bool = True
    fault: str | None = None  # per-request fault, e.g. "error_mid_stream:8"
    bootstrap_host: str | None = None
    bootstrap_port: int | None = None
    bootstrap_room: int | None = None
    kv_transfer_params: dict | None = None
    return_logprob: bool = False
    top_logprobs: int = 0


@dataclass(slots=True)
class TokenChunk:
    """New token ids of choice ``index``, with cumulative counts."""

    index: int
    token_ids: list[int]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    logprobs: list[float] | None = None
    # per token: (token_id, logprob) alternatives, best first; only when top_logprobs > 0
    top_logprobs: list[list[tuple[int, float]]] | None = None


@dataclass
class Finished:
    """Choice ``index`` is done. The matched stop token (if any) is the last output token."""

    index: int
    finish_reason: str  # "stop" | "length" | "abort"
    matched_stop: int | str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    kv_transfer_params: dict | None = None
    output_ids: list[int] = field(default_factory=list)  # all output tokens of this choice


class EngineError(Exception):
    """A request failed; ``status_code`` is HTTP-style (400 bad input, 500 fault, ...)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class EngineDisconnect(EngineError):
    """Injected mid-stream disconnect: drop the stream, do not report an error."""

    def __init__(self, message: str = "injected fault: disconnect_mid_stream") -> None:
        super().__init__(503, message)


def parse_fault(spec: str | None) -> tuple[str | None, float | None]:
    """``"stall:0"`` -> ("stall", 0.0); ``None``/"" -> (None, None)."""
    if not spec:
        return None, None
    name, _, arg = spec.strip().partition(":")
    if not arg:
        return name, None
    try:
        return name, float(arg)
    except ValueError:
        raise EngineError(400, f"bad fault argument in {spec!r}") from None

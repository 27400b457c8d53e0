"""API families beyond chat and completions, each converting to and from the shared
pipeline: ``responses`` (OpenAI Responses) and ``conversations`` (OpenAI Conversations),
over the history store (``smg.storage``)."""

from __future__ import annotations

__all__ = ["routes"]


def routes() -> list:
    from smg.api import conversations
    from smg.api.responses.endpoints import routes as response_routes

    return [*response_routes, *conversations.routes]

"""API families beyond chat and completions, each converting to and from the shared
pipeline: ``responses`` (OpenAI Responses) and ``conversations`` (OpenAI Conversations),
over the history store (``smg.storage``)."""

from __future__ import annotations

__all__ = ["routes", "shutdown"]


def routes() -> list:
    from smg.api import conversations
    from smg.api.responses.endpoints import routes as response_routes

    return [*response_routes, *conversations.routes]


async def shutdown() -> None:
    """Before the app state closes: stop the background responses still running."""
    from smg.api.responses.run import stop_background

    await stop_background()

"""The reference worker's OpenAI/SGLang-compatible HTTP face (proxy-mode workers).

``create_app(engine)`` builds the Starlette app; ``run_http(engine, config)`` serves it
with uvicorn (``smg worker --transport http``). Module map: ``asgi`` (bodies in, bytes
out), ``errors`` (OpenAI error bodies), ``params``/``sampling`` (request fields to engine
inputs), ``text`` (detokenization, stop strings), ``runner`` (engine calls to choice
events), ``respond`` (JSON or SSE, faults, aborts), ``openai_format``/``openai_routes``,
``generate`` (SGLang native), ``admin`` (health, info, loads, metrics, cache, abort).
"""

from smg.engine.http.app import create_app
from smg.engine.http.serve import run_http

__all__ = ["create_app", "run_http"]

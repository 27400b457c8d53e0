"""The OpenAI Responses API: ``request`` (the body, checked, as a chat request), ``items``
(input items and chat messages), ``chat`` (the chat run in gRPC or proxy mode),
``output`` (output items and streaming events), ``run`` (one request, whole, streamed or
in the background, and its storage), ``endpoints`` (the routes).

Not supported yet (each a 400 naming the field, or ignored where noted): tools other than
function tools (built-in, MCP, custom), ``item_reference`` input items, ``input_image``
in gRPC mode (no multimodal pipeline), ``include`` values other than
``message.output_text.logprobs`` (ignored), ``max_tool_calls``, ``prompt``, ``service_tier`` and the prompt
cache fields (ignored), reasoning summaries (reasoning comes as ``reasoning_text``
content, ``summary`` is empty). Reasoning token counts are exact in gRPC mode; in proxy
mode they are what the worker reports (0 when it reports none).
"""

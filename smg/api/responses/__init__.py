"""The OpenAI Responses API: ``request`` (the body, checked, as a chat request), ``items``
(input items and chat messages), ``chat`` (the chat run in gRPC or proxy mode),
``output`` (output items and streaming events), ``run`` (one request, whole, streamed or
in the background, and its storage), ``endpoints`` (the routes)."""

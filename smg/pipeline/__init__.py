"""gRPC (full server) mode: the gateway does all CPU work, the worker only generates.

request -> ``requests`` (validate, template, tokenize) -> policy picks a worker by token
ids -> ``GenParams`` -> ``clients.grpc`` stream -> per choice ``ChoiceStream``
(detok -> stops -> reasoning -> tools) -> OpenAI chunks (``responses``) -> SSE.
"""

"""The reference engine behind ``smg worker``: deterministic generation, a simulated
batch and prefix KV cache, PD roles and injected faults, served over gRPC
(``smg.engine.grpc``) and HTTP (``smg.engine.http``).

``smg.engine.core`` is the API the transports share (``Engine``, ``GenerateInput``,
``TokenChunk``, ``Finished``, ``EngineError``); ``smg.engine.config.WorkerConfig`` holds
every knob.
"""

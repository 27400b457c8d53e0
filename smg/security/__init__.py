"""Who may call the gateway, and where it may be told to reach.

- :mod:`smg.security.guard`: the per-request check (data plane, probes, control plane);
- :mod:`smg.security.keys`: API keys as digests, compared in constant time;
- :mod:`smg.security.jwt`: control-plane JWTs verified against the issuer's JWKS;
- :mod:`smg.security.audit`: one log line per control-plane change or refusal;
- :mod:`smg.security.urls`: worker-URL validation, the allow-list, the self-loop, redaction;
- :mod:`smg.security.tls`: the front's certificate, the context for ``https://`` workers.
"""

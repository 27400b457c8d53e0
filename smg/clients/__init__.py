"""How the gateway talks to workers."""

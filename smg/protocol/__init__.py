"""Request parsing for routing: just enough of each body to pick a worker."""

from smg.protocol.routing import PARSERS, RoutingFields, parse_body

__all__ = ["PARSERS", "RoutingFields", "parse_body"]

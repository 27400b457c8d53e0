"""HTTP/2 pieces shared by smg's own HTTP/2 endpoints: frame builders (``frames``) and
the connection core the lean gRPC client and server are built on (``endpoint``)."""

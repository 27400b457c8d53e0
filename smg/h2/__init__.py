"""HTTP/2 pieces shared by smg's own HTTP/2 endpoints (no asyncio, no grpc in here)."""

"""What the gateway tells its operators: logs (and, later, metrics names and tracing)."""

"""The gateway's HTTP face: endpoints, middleware and the per-app state they share."""

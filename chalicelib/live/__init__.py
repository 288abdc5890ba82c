"""Live-event push delivery: WebSocket connections following games' event streams (docs/reference/play-api.md)."""

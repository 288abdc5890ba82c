"""Live-event push delivery: WebSocket connections following games' event streams (see README "Live push")."""

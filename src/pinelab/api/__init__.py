"""API: the app factory, error handling, middleware and router assembly."""

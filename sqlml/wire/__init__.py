"""The PostgreSQL wire gateway: protocol codec, sessions, type conversion and the server."""

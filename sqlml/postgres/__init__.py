"""sqlml in PostgreSQL: the code that runs inside the server, and its installer."""

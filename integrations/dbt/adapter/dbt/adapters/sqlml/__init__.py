"""The dbt adapter ``type: sqlml``: dbt-duckdb on a DuckDB file, each statement through sqlml.

dbt-duckdb runs its SQL on a DuckDB cursor. This adapter is dbt-duckdb with one change: the
cursor is a sqlml connection's (sqlml.connect on the same file), so every statement takes
sqlml's engine path, the one the gateway and ``sqlml.connect`` take. Plain SQL goes on to
DuckDB unchanged (sqlml passes it through); CREATE MODEL, ML.PREDICT in a CREATE TABLE ... AS
or a view, ML.EVALUATE in a test, ALTER MODEL are sqlml's. dbt-duckdb's macros serve as they
are (``dependencies``), and the sqlml dbt package's macros (integrations/dbt) write BigQuery
ML's SQL, which sqlml reads.

Why an adapter and not a dbt-duckdb plugin: a plugin can configure DuckDB's connection and its
cursors, but not replace the cursor, and an ML statement has to reach sqlml, not DuckDB.
"""

from dbt.adapters.base import AdapterPlugin
from dbt.adapters.sqlml.connections import SqlmlConnectionManager, SqlmlCredentials
from dbt.adapters.sqlml.impl import SqlmlAdapter
from dbt.include import sqlml

__all__ = ["Plugin", "SqlmlAdapter", "SqlmlConnectionManager", "SqlmlCredentials"]

Plugin = AdapterPlugin(
    adapter=SqlmlAdapter,
    credentials=SqlmlCredentials,
    include_path=sqlml.PACKAGE_PATH,
    dependencies=["duckdb"],
)

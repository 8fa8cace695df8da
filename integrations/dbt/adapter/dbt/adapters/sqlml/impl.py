from dbt.adapters.duckdb.impl import DuckDBAdapter
from dbt.adapters.sqlml.connections import SqlmlConnectionManager


class SqlmlAdapter(DuckDBAdapter):  # type: ignore[misc]
    ConnectionManager = SqlmlConnectionManager

    @classmethod
    def type(cls) -> str:
        return "sqlml"

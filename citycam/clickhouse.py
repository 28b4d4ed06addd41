"""ClickHouse client from settings: the same HTTP client for a server or the embedded endpoint."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from rich.table import Table

from citycam.config import WarehouseSettings


def connect(
    settings: WarehouseSettings,
    *,
    database: str | None = "",
    username: str | None = None,
    password: str | None = None,
) -> Client:
    """A client for the configured warehouse; database "" means the configured one."""
    url = urlparse(settings.url)
    if url.scheme not in ("http", "https"):
        raise ValueError(f"warehouse URL must be http(s)://host:port, got {settings.url!r}")
    return clickhouse_connect.get_client(
        host=url.hostname or "127.0.0.1",
        port=url.port or (8443 if url.scheme == "https" else 8123),
        secure=url.scheme == "https",
        username=username or settings.username,
        password=password if password is not None else settings.password.get_secret_value(),
        database=settings.database if database == "" else database,
        # Stages run for weeks: an idle pooled connection must not fail the next insert.
        connect_timeout=10,
        send_receive_timeout=120,
    )


def query_table(
    client: Client, sql: str, parameters: dict[str, Any] | None = None, **table_options: Any
) -> Table:
    """A query's result as a rich table, for the CLI and the demo (`table_options`: title...)."""
    result = client.query(sql, parameters=parameters)
    # a result without rows may come back without column names either
    table = Table(*(result.column_names or ["(no rows)"]), **table_options)
    for row in result.result_rows:
        table.add_row(*(str(v) for v in row))
    return table

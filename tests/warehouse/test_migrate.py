"""Migrations against the real engine behind the embedded endpoint."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from warehouse.migrate import Migration, MigrationError, load_migrations, migrate


@pytest.fixture
def database() -> str:
    return f"mig_{uuid.uuid4().hex[:8]}"


def test_migrations_apply_once_and_are_recorded(
    connect: Callable[..., Client], database: str
) -> None:
    client = connect(database=None)
    applied = migrate(client, database, raw_ttl_days=7)
    assert [m.version for m in applied] == [m.version for m in load_migrations()]
    assert migrate(client, database, raw_ttl_days=7) == []  # idempotent
    recorded = client.query(
        f"SELECT version, name, checksum FROM {database}.schema_migrations ORDER BY version"
    ).result_rows
    assert recorded == [(m.version, m.name, m.checksum) for m in load_migrations()]
    tables = set(client.query(f"SHOW TABLES FROM {database}").result_columns[0])
    assert {"frames", "detections", "traffic_density_1m", "dead_letters"} <= tables


def test_every_table_and_column_is_commented(connect: Callable[..., Client], database: str) -> None:
    client = connect(database=None)
    migrate(client, database, raw_ttl_days=7)
    uncommented_columns = client.query(
        "SELECT table, name FROM system.columns WHERE database = {db:String} AND comment = ''",
        parameters={"db": database},
    ).result_rows
    assert uncommented_columns == []
    uncommented_tables = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND comment = ''",
        parameters={"db": database},
    ).result_rows
    assert uncommented_tables == []


def test_raw_ttl_follows_the_setting(connect: Callable[..., Client], database: str) -> None:
    client = connect(database=None)
    migrate(client, database, raw_ttl_days=7)
    migrate(client, database, raw_ttl_days=3)
    ddl = client.command(f"SHOW CREATE TABLE {database}.detections")
    assert "toIntervalDay(3)" in str(ddl) and "toIntervalDay(7)" not in str(ddl)


def test_an_applied_migration_must_not_change(
    connect: Callable[..., Client], database: str
) -> None:
    client = connect(database=None)
    migrate(client, database, 7)  # apply the real set, then pretend a file was edited
    edited = load_migrations()
    edited[0] = Migration(edited[0].version, edited[0].name, edited[0].sql + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(client, database, 7, edited)


def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_init.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


def test_statements_split_on_line_end_semicolons() -> None:
    migration = Migration(9, "x", "-- a comment; with a semicolon\nSELECT 'a;b';\nSELECT 2;\n")
    assert migration.statements() == ["SELECT 'a;b'", "SELECT 2"]

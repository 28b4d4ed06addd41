"""The checked-in data dictionary is what the migrations produce."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from warehouse.dictionary import DICTIONARY_FILE, _column_definitions, _column_ttl, generate
from warehouse.migrate import migrate

REPO = Path(__file__).parents[2]


def fresh(client: Client) -> str:
    database = f"dict_{uuid.uuid4().hex[:8]}"
    migrate(client, database, raw_ttl_days=7)
    return database


def test_checked_in_dictionary_is_current(connect: Callable[..., Client]) -> None:
    client = connect(database=None)
    generated = generate(client, fresh(client))
    assert generated == DICTIONARY_FILE.read_text(), (
        "warehouse/DATA_DICTIONARY.md is stale: run `python -m warehouse.dictionary`"
    )


def test_dictionary_is_deterministic_and_covers_every_object(
    connect: Callable[..., Client],
) -> None:
    client = connect(database=None)
    database = fresh(client)
    text = generate(client, database)
    assert generate(client, database) == text
    assert database not in text  # written as `citycam` whatever the real name
    objects = client.query(
        "SELECT database, name FROM system.tables WHERE database IN ({db:String}, 'open_data')",
        parameters={"db": database},
    ).result_rows
    for db, name in objects:
        shown = "citycam" if db == database else db
        assert f"#### `{shown}.{name}`" in text
    for table, column in client.query(
        "SELECT table, name FROM system.columns WHERE database = {db:String}",
        parameters={"db": database},
    ).result_rows:
        assert f"| `{column}` |" in text, f"{table}.{column} missing"
    assert "(TTL `toDateTime(occurred_at) + toIntervalDay(90)`)" in text  # plate_text
    assert "- Writes to: `citycam.traffic_density_1h_rows`" in text


def test_documenting_a_database_open_data_does_not_publish_is_refused(
    connect: Callable[..., Client],
) -> None:
    client = connect(database=None)
    first = fresh(client)
    fresh(client)  # open_data now reads the second database
    with pytest.raises(RuntimeError, match="open_data was last published from another"):
        generate(client, first)


def test_check_mode_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "DATA_DICTIONARY.md"
    stale.write_text(DICTIONARY_FILE.read_text() + "\nedited by hand\n")
    command = [sys.executable, "-m", "warehouse.dictionary", "--check"]
    result = subprocess.run(
        [*command, "--output", str(stale)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "-edited by hand" in result.stdout and "is stale" in result.stderr
    current = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert current.returncode == 0, current.stdout + current.stderr


def test_column_definitions_survive_quotes_in_comments() -> None:
    create = (
        "CREATE TABLE db.t (`a` String COMMENT 'it\\'s (a), TTL x', "
        "`b` Nullable(String) COMMENT 'p, q' TTL toDateTime(c) + toIntervalDay(9), "
        "`c` DateTime) ENGINE = MergeTree ORDER BY a"
    )
    definitions = _column_definitions(create)
    assert list(definitions) == ["a", "b", "c"]
    assert _column_ttl(definitions["a"]) == ""
    assert _column_ttl(definitions["b"]) == "toDateTime(c) + toIntervalDay(9)"

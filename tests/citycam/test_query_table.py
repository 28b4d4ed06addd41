"""`citycam sql` and the demo print query results through one helper."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from citycam.clickhouse import query_table


class FakeResult:
    column_names = ("camera_id", "pcu")
    result_rows = [("cam-a", 12.5), ("cam-b", None)]


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def query(self, sql: str, parameters: Any = None) -> FakeResult:
        self.calls.append((sql, parameters))
        return FakeResult()


def test_rows_and_columns_become_a_titled_table() -> None:
    client = FakeClient()
    table = query_table(client, "SELECT 1", {"since": 1}, title="T")  # type: ignore[arg-type]
    assert client.calls == [("SELECT 1", {"since": 1})]
    assert [c.header for c in table.columns] == ["camera_id", "pcu"]
    assert table.row_count == 2 and table.title == "T"
    console = Console(width=80, record=True)
    console.print(table)
    text = console.export_text()
    assert "cam-a" in text and "12.5" in text and "None" in text


def test_a_result_without_rows_still_prints_a_table() -> None:
    class Empty(FakeResult):
        column_names = ()
        result_rows = []

    client = FakeClient()
    client.query = lambda sql, parameters=None: Empty()  # type: ignore[method-assign]
    table = query_table(client, "SELECT 1 WHERE 0", caption="nothing yet")  # type: ignore[arg-type]
    console = Console(width=80, record=True)
    console.print(table)
    text = console.export_text()
    assert "(no rows)" in text and "nothing yet" in text

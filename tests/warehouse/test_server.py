"""The embedded warehouse endpoint against the real client, raw HTTP, and hostile SQL.

The server runs in a subprocess (see conftest.py); every call below crosses real HTTP.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import http.client
import io
import json
import threading
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Mapping
from decimal import Decimal
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import clickhouse_connect
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from warehouse.server import (
    WarehouseError,
    create_server,
    insert_data_offset,
    load_users,
    parse_ast,
)

Connect = Callable[..., Client]
DATABASE = "citycam_test"  # the endpoint fixture's default database


def post(
    endpoint: Any,
    body: bytes | str | None = None,
    *,
    role: str | None = "writer",
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Message, bytes]:
    """One request like curl's: POST when there is a body, Basic auth for `role`."""
    database = "open_data" if role == "opendata" else DATABASE  # all opendata users may use
    query = urlencode({"database": database, **(params or {})})
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(f"{endpoint.url}/?{query}", data=data)
    if role is not None:
        token = base64.b64encode(f"{role}:{endpoint.passwords[role]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def refused(call: Callable[..., object], *args: object) -> DatabaseError:
    with pytest.raises(DatabaseError) as caught:
        call(*args)
    return caught.value


def refusal_code(call: Callable[..., object], *args: object) -> int:
    code = refused(call, *args).code
    assert code is not None
    return code


def create_events(client: Client, table: str) -> None:
    client.command(
        f"CREATE TABLE {table} (id UInt32, camera LowCardinality(String),"
        " seen DateTime64(3, 'UTC'), score Nullable(Float64), tags Array(String),"
        " price Decimal(10, 2)) ENGINE = MergeTree ORDER BY id"
    )


# -- the client protocol --------------------------------------------------------------------


def test_ping_and_connect_sequence(endpoint: Any, connect: Connect) -> None:
    with urllib.request.urlopen(f"{endpoint.url}/ping", timeout=5) as response:
        assert response.read() == b"Ok.\n"
    client = connect()
    assert client.ping()
    assert (client.server_version or "").startswith("26.")
    assert client.command("SELECT 1") == 1


def test_insert_dataframe_and_rows_round_trip(connect: Connect, table: str) -> None:
    client = connect()  # default settings: lz4-compressed Native inserts
    create_events(client, table)
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "camera": ["north", "south", "north"],
            "seen": pd.to_datetime(
                ["2026-01-01 08:00:00.125", "2026-01-01 08:01:00", "2026-01-02"], format="ISO8601"
            ),
            "score": [0.5, None, 0.75],
            "tags": [["car"], [], ["bus", "truck"]],
            "price": [Decimal("1.25"), Decimal("0"), Decimal("99.99")],
        }
    )
    assert client.insert_df(table, frame).written_rows == 3
    rows = [[4, "east", dt.datetime(2026, 1, 3, 12, 0), 1.0, ["bike"], Decimal("3.10")]]
    assert client.insert(table, rows, column_names=list(frame.columns)).written_rows == 1

    back = client.query(f"SELECT * FROM {table} ORDER BY id").result_rows
    assert back[0] == (
        1,
        "north",
        dt.datetime(2026, 1, 1, 8, 0, 0, 125000),
        0.5,
        ["car"],
        Decimal("1.25"),
    )
    assert back[1][3] is None and back[2][4] == ["bus", "truck"]
    assert back[3] == (4, "east", dt.datetime(2026, 1, 3, 12, 0), 1.0, ["bike"], Decimal("3.10"))

    df = client.query_df(f"SELECT id, camera, score FROM {table} WHERE id <= 3 ORDER BY id")
    pd.testing.assert_frame_equal(
        df, frame[["id", "camera", "score"]].astype({"id": "uint32"}), check_dtype=False
    )
    arrow = client.query_arrow(f"SELECT id, camera FROM {table} ORDER BY id")
    assert arrow.column("id").to_pylist() == [1, 2, 3, 4]
    assert arrow.column("camera").to_pylist() == ["north", "south", "north", "east"]


@pytest.mark.parametrize("compression", ["zstd", "gzip", False])  # lz4: every other test
def test_insert_with_each_request_compression(
    connect: Connect, table: str, compression: object
) -> None:
    client = connect(compress=compression)
    client.command(f"CREATE TABLE {table} (n UInt64, s String) ENGINE = MergeTree ORDER BY n")
    rows = [[n, f"row {n}"] for n in range(5000)]
    assert client.insert(table, rows, column_names=["n", "s"]).written_rows == 5000
    assert client.query(f"SELECT count(), sum(n) FROM {table}").result_rows == [(5000, 12497500)]


def test_both_parameter_styles(connect: Connect) -> None:
    client = connect()
    server_side = "SELECT {name:String} AS name, {n:UInt32} + 1 AS next"
    assert client.query(server_side, parameters={"name": "it's\ta", "n": 41}).result_rows == [
        ("it's\ta", 42)
    ]
    client_side = "SELECT %(name)s AS name, %(n)s + 1 AS next"
    assert client.query(client_side, parameters={"name": "b'c", "n": 1}).result_rows == [("b'c", 2)]
    # Long values make the client switch to a multipart form body.
    many = list(range(3000))
    result = client.query(
        "SELECT count() FROM numbers(5000) WHERE number IN {ids:Array(UInt32)}",
        parameters={"ids": many},
    )
    assert result.result_rows == [(3000,)]


def test_command_results_and_summaries(connect: Connect, table: str) -> None:
    client = connect()
    summary = client.command(f"CREATE TABLE {table} (n UInt8) ENGINE = Memory")
    assert not isinstance(summary, (int, str))  # DDL gives a summary, not a result
    client.command(f"INSERT INTO {table} SELECT number FROM numbers(7)")
    assert client.command(f"SELECT count() FROM {table}") == 7
    assert client.command("SELECT 'a', 'b'") == ["a", "b"]


def test_errors_carry_clickhouse_codes(endpoint: Any, connect: Connect) -> None:
    client = connect()
    syntax = refused(lambda: client.query("SELEC 1"))
    assert syntax.code == 62 and "Syntax error" in str(syntax)
    missing = refused(lambda: client.query("SELECT * FROM no_such_table"))
    assert missing.code == 60 and "no_such_table" in str(missing)

    status, headers, body = post(endpoint, "SELECT * FROM no_such_table")
    assert status == 404
    assert headers["X-ClickHouse-Exception-Code"] == "60"
    assert body.startswith(b"Code: 60. DB::Exception: ") and b"(UNKNOWN_TABLE)" in body


def test_error_in_the_middle_of_a_stream_reaches_the_client(connect: Connect) -> None:
    client = connect()
    sql = (
        "SELECT throwIf(number = 150000, 'boom') FROM numbers(300000)"
        " SETTINGS max_block_size = 10000"
    )
    with pytest.raises(Exception, match="boom"), client.query_row_block_stream(sql) as stream:
        for _ in stream:
            pass
    assert client.command("SELECT 2") == 2  # and the client keeps working


def test_session_keeps_state_and_url_settings_stay_per_query(connect: Connect) -> None:
    session = str(uuid.uuid4())
    client = connect(session_id=session)
    client.command("CREATE TEMPORARY TABLE scratch (n UInt8) ENGINE = Memory")
    client.command("INSERT INTO scratch VALUES (1), (2)")
    assert client.command("SELECT count() FROM scratch") == 2
    client.command("SET max_threads = 1")
    assert client.command("SELECT getSetting('max_threads')") == 1
    per_query = client.query(
        "SELECT getSetting('max_threads')", settings={"max_threads": 3}
    ).result_rows
    assert per_query == [(3,)]
    assert client.command("SELECT getSetting('max_threads')") == 1  # the session's value again

    other = connect(session_id=str(uuid.uuid4()))
    assert refused(lambda: other.command("SELECT count() FROM scratch")).code == 60


def test_session_survives_a_client_dropping_a_stream(endpoint: Any) -> None:
    """The session's next query is answered right after its client dropped a big result."""
    session = {"session_id": str(uuid.uuid4())}
    query = urlencode({"database": DATABASE, **session})
    token = base64.b64encode(f"writer:{endpoint.passwords['writer']}".encode()).decode()
    connection = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=30)
    connection.request(
        "POST",
        f"/?{query}",
        body="SELECT number FROM numbers(50000000)",
        headers={"Authorization": f"Basic {token}"},
    )
    response = connection.getresponse()
    assert response.status == 200 and response.read(1000)
    connection.close()  # the client goes away mid-stream
    status, _, body = post(endpoint, "SELECT count() FROM numbers(10)", params=session)
    assert (status, body) == (200, b"10\n")


# -- raw HTTP, as curl would ----------------------------------------------------------------


def test_raw_http_queries_and_formats(endpoint: Any) -> None:
    sql = "SELECT number AS n FROM numbers(3) FORMAT JSONEachRow"
    for wait in ("0", "1"):  # streamed, or answered once complete with its summary
        params = {"query_id": f"q-{wait}", "wait_end_of_query": wait}
        status, headers, body = post(endpoint, sql, params=params)
        assert status == 200
        assert [json.loads(line) for line in body.splitlines()] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert headers["X-ClickHouse-Query-Id"] == f"q-{wait}"
        assert headers["X-ClickHouse-Format"] == "JSONEachRow"
        assert headers["X-ClickHouse-Timezone"]
    assert json.loads(headers["X-ClickHouse-Summary"])["read_rows"] == "3"

    _, headers, body = post(endpoint, "SELECT 'a,b' AS s, 1 AS n FORMAT CSV")
    assert body == b'"a,b",1\n' and headers["X-ClickHouse-Format"] == "CSV"
    _, _, body = post(endpoint, None, params={"query": "SELECT 1, 'x'"})  # GET, TabSeparated
    assert body == b"1\tx\n"
    _, _, body = post(endpoint, "SELECT 2", params={"default_format": "JSONCompact"})
    assert json.loads(body)["data"] == [[2]]
    _, _, body = post(endpoint, "SELECT number FROM numbers(3) FORMAT Parquet")
    assert pq.read_table(io.BytesIO(body)).column("number").to_pylist() == [0, 1, 2]
    _, _, body = post(endpoint, "SELECT number FROM numbers(3) FORMAT Arrow")
    assert pa.ipc.open_file(io.BytesIO(body)).read_all().column("number").to_pylist() == [0, 1, 2]
    _, _, body = post(endpoint, "SELECT 1 AS one FORMAT Pretty")
    assert "one" in body.decode()
    _, _, body = post(endpoint, "SELECT 42 FORMAT RowBinaryWithNamesAndTypes")
    assert body.endswith(b"\x2a")


def test_raw_http_inserts(endpoint: Any, connect: Connect, table: str) -> None:
    connect().command(f"CREATE TABLE {table} (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
    json_rows = f'INSERT INTO {table} FORMAT JSONEachRow\n{{"a":1,"s":"x"}}\n{{"a":2,"s":"y"}}\n'
    status, headers, _ = post(endpoint, json_rows)
    assert status == 200 and json.loads(headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    # The statement in the URL, only data in the body.
    status, _, _ = post(
        endpoint, '3,z\n4,"w,w"\n', params={"query": f"INSERT INTO {table} FORMAT CSV"}
    )
    assert status == 200
    compressed = gzip.compress(f"INSERT INTO {table} VALUES (5, 'five'), (6, 'six')".encode())
    status, _, _ = post(endpoint, compressed, headers={"Content-Encoding": "gzip"})
    assert status == 200
    compressed = zlib.compress(f"INSERT INTO {table} FORMAT TSV\n7\tseven\n".encode())
    status, _, _ = post(endpoint, compressed, headers={"Content-Encoding": "deflate"})
    assert status == 200
    _, _, body = post(endpoint, f"SELECT a, s FROM {table} ORDER BY a FORMAT CSV")
    assert body.decode().splitlines() == [
        *('1,"x"', '2,"y"', '3,"z"', '4,"w,w"'),
        *('5,"five"', '6,"six"', '7,"seven"'),
    ]


def test_compressed_responses_and_other_logins(endpoint: Any) -> None:
    status, headers, body = post(
        endpoint, "SELECT number FROM numbers(1000)", headers={"Accept-Encoding": "gzip"}
    )
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert len(gzip.decompress(body).splitlines()) == 1000
    login = {"X-ClickHouse-User": "analyst", "X-ClickHouse-Key": endpoint.passwords["analyst"]}
    assert post(endpoint, "SELECT 7", role=None, headers=login)[2] == b"7\n"
    params = {"user": "analyst", "password": endpoint.passwords["analyst"]}
    assert post(endpoint, "SELECT 8", role=None, params=params)[2] == b"8\n"


def test_bad_password_is_refused(endpoint: Any) -> None:
    headers = {"X-ClickHouse-User": "writer", "X-ClickHouse-Key": "wrong"}
    status, reply_headers, body = post(endpoint, "SELECT 1", role=None, headers=headers)
    assert status == 401 and reply_headers["X-ClickHouse-Exception-Code"] == "516"
    assert b"Authentication failed" in body
    with pytest.raises(DatabaseError) as caught:
        clickhouse_connect.get_client(
            host=endpoint.host, port=endpoint.port, username="analyst", password="nope"
        )
    assert caught.value.code == 516


# -- security -------------------------------------------------------------------------------


def test_analyst_reads_but_cannot_write(connect: Connect, table: str) -> None:
    writer = connect()
    writer.command(f"CREATE TABLE {table} (n UInt8) ENGINE = MergeTree ORDER BY n")
    writer.command(f"INSERT INTO {table} VALUES (1), (2)")
    analyst = connect("analyst")
    assert analyst.command(f"SELECT sum(n) FROM {table}") == 3
    assert analyst.command("SELECT getSetting('readonly')") == 1  # the engine's own guard too
    assert analyst.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase()"
    ).result_rows
    for sql in [
        f"INSERT INTO {table} VALUES (3)",
        f"CREATE TABLE {table}_x (n UInt8) ENGINE = Memory",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table} DELETE WHERE 1",
        f"TRUNCATE TABLE {table}",
        "SYSTEM SHUTDOWN",
        "KILL QUERY WHERE 1",
    ]:
        assert refusal_code(analyst.command, sql) in (164, 497), sql
    assert refusal_code(lambda: analyst.insert(table, [[9]], column_names=["n"])) in (164, 497)
    assert writer.command(f"SELECT sum(n) FROM {table}") == 3


HOST_FILE_ATTEMPTS = [
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM  FILE('/etc/passwd', 'LineAsString')",
    "select * from /* hidden */ File('/etc/passwd', LineAsString)",
    "SELECT * FROM \"file\"('/etc/passwd', 'LineAsString')",
    "SELECT file('/etc/passwd')",
    "SELECT * FROM url('http://127.0.0.1:9/', CSV, 'a String')",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k.csv', CSV, 'a String')",
    "SELECT * FROM executable('id', TSV, 'a String')",
    "SELECT * FROM remote('127.0.0.1:9000', system.one)",
    "WITH x AS (SELECT * FROM file('/etc/passwd', 'LineAsString')) SELECT * FROM x",
    "SELECT 1 WHERE 'root' IN (SELECT * FROM file('/etc/passwd', 'LineAsString'))",
    "SELECT * FROM view(SELECT * FROM file('/etc/passwd', 'LineAsString'))",
    "SELECT arrayMap(x -> file(x), ['/etc/passwd'])",
    "INSERT INTO FUNCTION file('/tmp/citycam_escape.csv', CSV, 'a UInt8') SELECT 1",
    "SELECT 1 INTO OUTFILE '/tmp/citycam_escape.txt'",
]


@pytest.mark.parametrize("role", ["analyst", "opendata", "writer"])
def test_host_files_and_urls_are_unreachable(endpoint: Any, role: str) -> None:
    for sql in HOST_FILE_ATTEMPTS:
        status, headers, body = post(endpoint, sql, role=role)
        assert status == 403, (sql, body)
        assert headers["X-ClickHouse-Exception-Code"] == "497", (sql, body)
        assert b"root:" not in body, sql
    assert not Path("/tmp/citycam_escape.csv").exists()
    assert not Path("/tmp/citycam_escape.txt").exists()


def test_identifier_parameters_are_checked_as_substituted(endpoint: Any) -> None:
    sql = "SELECT * FROM {t:Identifier}"
    in_system = {"database": "system", "param_t": "processes"}
    status, _, body = post(endpoint, sql, role="analyst", params=in_system)
    assert status == 403 and b"system.processes" in body
    assert post(endpoint, sql, role="analyst", params={**in_system, "param_t": "one"})[2] == b"0\n"
    for name in ("one\n      TableIdentifier system.one", "system.processes"):
        # A newline could forge tree lines; a dot reads as db.table but runs as one name.
        status, headers, _ = post(endpoint, sql, role="analyst", params={"param_t": name})
        assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "36"


@pytest.mark.parametrize("role", ["analyst", "writer"])
def test_server_survives_shutdown_and_kill_attempts(endpoint: Any, role: str) -> None:
    for sql in [
        "SYSTEM SHUTDOWN",
        "system  kill",
        "KILL QUERY WHERE 1",
        "SELECT 1; SYSTEM SHUTDOWN",
    ]:
        status, _, _ = post(endpoint, sql, role=role)
        assert status >= 400, sql
    with urllib.request.urlopen(f"{endpoint.url}/ping", timeout=5) as response:
        assert response.read() == b"Ok.\n"
    assert post(endpoint, "SELECT 1", role=role)[2] == b"1\n"


def test_one_statement_per_request(endpoint: Any, connect: Connect, table: str) -> None:
    connect().command(f"CREATE TABLE {table} (n UInt8) ENGINE = Memory")
    for sql in [
        "SELECT 1; SELECT 2",
        f"SELECT 'a;b'; DROP TABLE {table}",
        f"SELECT 1;\nDROP TABLE {table};",
        f"SELECT 1 -- comment\n; DROP TABLE {table}",
    ]:
        status, headers, body = post(endpoint, sql)
        assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "62", sql
        assert b"Multi-statements are not allowed" in body, sql
    assert post(endpoint, "SELECT 'a;b';")[2] == b"a;b\n"  # one statement, one trailing ;
    assert post(endpoint, f"EXISTS TABLE {table}")[2] == b"1\n"


def test_writer_sql_is_screened_too(endpoint: Any, connect: Connect, table: str) -> None:
    writer = connect()
    writer.command(f"CREATE TABLE {table} (s String) ENGINE = MergeTree ORDER BY s")
    for sql in [
        "SET allow_introspection_functions = 1",
        "SET readonly = 0",
        "SELECT 1 SETTINGS additional_table_filters = {'t': '1'}",
        f"CREATE TABLE {table}_f (s String) ENGINE = File(CSV, '/tmp/x.csv')",
        f"CREATE TABLE {table}_u (s String) ENGINE = URL('http://127.0.0.1:9/', CSV)",
        f"CREATE TABLE {table}_d (s String) ENGINE = MergeTree ORDER BY s"
        " SETTINGS disk = disk(type = local, path = '/tmp/citycam_disk/')",
        "CREATE DATABASE escape ENGINE = Filesystem('/')",
        f"CREATE TABLE {table}_a AS file('/etc/passwd', 'LineAsString')",
        "CREATE DICTIONARY dict_escape (s String) PRIMARY KEY s"
        " SOURCE(FILE(path '/etc/passwd' format 'LineAsString')) LAYOUT(FLAT()) LIFETIME(0)",
        f"ATTACH TABLE {table}_t FROM '/tmp' (s String) ENGINE = MergeTree ORDER BY s",
        "BACKUP DATABASE default TO File('/tmp/citycam_backup')",
        "CREATE USER escapee IDENTIFIED BY 'x'",
    ]:
        assert refusal_code(writer.command, sql) in (497, 36), sql
    status, _, _ = post(endpoint, f"INSERT INTO {table} VALUES (file('/etc/passwd'))")
    assert status >= 400  # inline VALUES take literals only
    status, _, _ = post(endpoint, None, params={"query": f"INSERT INTO {table} VALUES ('x')"})
    assert status == 403  # GET is read-only, as in ClickHouse
    assert writer.command(f"SELECT count() FROM {table}") == 0
    status, _, _ = post(endpoint, "SELECT 1", role="analyst", params={"readonly": "0"})
    assert status == 403


def test_opendata_reads_only_open_data(endpoint: Any, connect: Connect, table: str) -> None:
    writer = connect()
    writer.command(f"CREATE TABLE {table} (camera String, secret String) ENGINE = Memory")
    writer.command(f"INSERT INTO {table} VALUES ('north', 's3cret')")
    writer.command(
        f"CREATE OR REPLACE VIEW open_data.{table} AS SELECT camera FROM {DATABASE}.{table}"
    )
    try:
        public = connect("opendata", database="open_data")  # the connect sequence works
        assert public.query(f"SELECT * FROM {table}").result_rows == [("north",)]
        for sql in [
            f"SELECT * FROM {DATABASE}.{table}",
            f"SELECT * FROM {table} WHERE camera IN (SELECT secret FROM {DATABASE}.{table})",
            f"SELECT * FROM merge('{DATABASE}', '.*')",
            "SELECT * FROM system.tables",
            "SHOW TABLES FROM system",
            f"SELECT dictGet('{DATABASE}.d', 'x', 1)",
        ]:
            assert refusal_code(public.query, sql) == 497, sql
        status, _, _ = post(endpoint, "SELECT 1", role="opendata", params={"database": DATABASE})
        assert status == 403
    finally:
        writer.command(f"DROP VIEW IF EXISTS open_data.{table}")


# -- concurrency and lifecycle ----------------------------------------------------------------


def test_readers_run_while_an_insert_streams(connect: Connect, table: str) -> None:
    writer = connect()
    writer.command(f"CREATE TABLE {table} (n UInt64, s String) ENGINE = MergeTree ORDER BY n")
    batches, batch_rows = 20, 5000
    errors: list[BaseException] = []
    done = threading.Event()
    seen: list[list[int]] = [[] for _ in range(4)]

    def insert() -> None:
        try:
            for b in range(batches):
                frame = pd.DataFrame({"n": range(b * batch_rows, (b + 1) * batch_rows)})
                frame["s"] = frame["n"].astype(str)
                writer.insert_df(table, frame)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def read(index: int) -> None:
        reader = connect("analyst")
        try:
            while not done.is_set():
                seen[index].append(reader.query(f"SELECT count() FROM {table}").result_rows[0][0])
                reader.query_df(f"SELECT n, s FROM {table} ORDER BY n DESC LIMIT 100")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=insert)] + [
        threading.Thread(target=read, args=(i,)) for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert writer.command(f"SELECT count(), uniqExact(n) FROM {table}") == [
        str(batches * batch_rows),
        str(batches * batch_rows),
    ]
    for counts in seen:
        assert counts and counts == sorted(counts)  # readers saw the table grow, never shrink


def test_restart_after_sigterm_keeps_the_data(tmp_path: Path, launch: Any) -> None:
    """SIGTERM closes chDB: a new server opens the same data path and finds the rows."""
    for run in range(2):
        server = launch(tmp_path)
        client = clickhouse_connect.get_client(
            host=server.host,
            port=server.port,
            username="writer",
            password=server.passwords["writer"],
        )
        if run == 0:
            client.command(f"CREATE TABLE {DATABASE}.kept (n UInt8) ENGINE = MergeTree ORDER BY n")
            client.command(f"INSERT INTO {DATABASE}.kept VALUES (1), (2), (3)")
        else:
            assert client.command(f"SELECT sum(n) FROM {DATABASE}.kept") == 6
        client.close()
        assert server.stop() == 0


# -- pieces without a server ----------------------------------------------------------------


def test_remote_hosts_need_explicit_consent(tmp_path: Path) -> None:
    users = load_users('[{"name": "w", "password": "p", "role": "writer"}]')
    with pytest.raises(ValueError, match="non-loopback"):
        create_server(tmp_path, "0.0.0.0", 0, users)
    assert not any(tmp_path.iterdir())  # refused before chDB opened anything


@pytest.mark.parametrize(
    ("text", "eof", "expected"),
    [
        ("INSERT INTO t FORMAT Native\n\x09\x00", False, 28),  # a tab is data, not a blank
        ("INSERT INTO t (a, b) FORMAT CSV 1,2", True, 32),
        ("INSERT INTO t VALUES (1)", True, 20),
        ("insert into `format` format CSV\r\n1", True, 33),
        ("INSERT INTO t SETTINGS x = 'FORMAT' FORMAT TSV\n", True, 47),
        ("/* c */ INSERT INTO t FORMAT JSONEachRow\n{}", True, 41),
        ("INSERT INTO t SELECT 1", True, None),
        ("SELECT 1 FORMAT CSV\n", True, None),
        ("INSERT INTO t FORMAT Nat", False, -1),  # the name may go on
        ("INSERT INTO t FORMAT CSV ", False, -1),  # a newline may follow
    ],
)
def test_insert_data_offset(text: str, eof: bool, expected: int | None) -> None:
    assert insert_data_offset(text, eof) == expected


def test_engine_errors_keep_code_name_and_message() -> None:
    nested = (
        "Code: 164. DB::Exception: Code: 164. DB::Exception: Cannot modify 'x' setting in"
        " readonly mode. (READONLY) (version 26.9.2.1). (READONLY)"
    )
    error = WarehouseError.from_engine(RuntimeError(nested))
    assert (error.code, error.name) == (164, "READONLY")
    assert error.message == "Cannot modify 'x' setting in readonly mode"
    assert error.body("26.9").startswith("Code: 164. DB::Exception: Cannot modify 'x' setting")


def test_tree_dumps_that_do_not_add_up_are_refused() -> None:
    assert parse_ast("Query (children 1)\n Function file").children[0].argument == "file"
    for forged in ("Query (children 1)\n Identifier a\n Function file", "Query\n Function file"):
        with pytest.raises(ValueError):
            parse_ast(forged)

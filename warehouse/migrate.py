"""Forward-only, versioned DDL migrations, recorded in the warehouse itself.

Files `warehouse/migrations/NNNN_name.sql` are applied in order, once each; the table
`schema_migrations` records version, name and checksum. Editing an applied migration is an
error (write a new one instead). Statements are separated by a `;` at the end of a line.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return [s.strip() for s in re.split(r";\s*$", body, flags=re.MULTILINE) if s.strip()]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return migrations


def migrate(
    client: Client, database: str, raw_ttl_days: int, migrations: list[Migration] | None = None
) -> list[Migration]:
    """Apply pending migrations; return those applied now. Safe to run again."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations ("
        " version UInt32 COMMENT 'Migration number (file prefix).',"
        " name String COMMENT 'Migration name (file name without number).',"
        " checksum String COMMENT 'SHA-256 of the migration file as applied.',"
        " applied_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When it was applied.'"
        ") ENGINE = MergeTree ORDER BY version"
        " COMMENT 'Warehouse migrations applied, one row each (forward-only).'"
    )
    applied = {
        row[0]: (row[1], row[2])
        for row in client.query(
            f"SELECT version, name, checksum FROM {database}.schema_migrations"
        ).result_rows
    }
    done = []
    for migration in migrations if migrations is not None else load_migrations():
        if migration.version in applied:
            if applied[migration.version][1] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} changed after it was "
                    "applied; write a new migration instead"
                )
            continue
        log.info("applying migration %04d_%s", migration.version, migration.name)
        for statement in migration.statements():
            client.command(statement.replace("{database}", database))
        client.insert(
            f"{database}.schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        done.append(migration)
    apply_raw_ttl(client, database, raw_ttl_days)
    return done


def apply_raw_ttl(client: Client, database: str, days: int) -> None:
    """Raw tables' TTL is a setting, not schema: set it on every run (metadata-only change)."""
    for table in ("frames", "detections"):
        client.command(
            f"ALTER TABLE {database}.{table} "
            f"MODIFY TTL toDateTime(captured_at) + INTERVAL {int(days)} DAY",
            settings={"materialize_ttl_after_modify": 0},
        )

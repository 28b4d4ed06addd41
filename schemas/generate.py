"""Write the JSON Schema file of every contract: `python -m schemas.generate [--check]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from schemas import CONTRACTS, Event

JSON_DIR = Path(__file__).parent / "json"


def render(contract: type[Event]) -> str:
    schema = contract.model_json_schema(mode="serialization")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": contract.schema_url(),
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def schema_path(contract: type[Event]) -> Path:
    return JSON_DIR / f"{contract.SCHEMA_NAME}-{contract.SCHEMA_VERSION}.json"


def stale_files() -> list[Path]:
    return [
        schema_path(c)
        for c in CONTRACTS
        if not schema_path(c).exists() or schema_path(c).read_text() != render(c)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"out of date: {path} (run python -m schemas.generate)", file=sys.stderr)
        return 1 if stale else 0
    JSON_DIR.mkdir(exist_ok=True)
    for contract in CONTRACTS:
        schema_path(contract).write_text(render(contract))
        print(f"wrote {schema_path(contract)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

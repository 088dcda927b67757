"""``make logs ID=<request id, task uid or object key>``: every log line of one job, from every process of the
local platform (gateway, functions, their work processes, the event bridge), in time order.

A job's lines carry its ``request_id`` (the client's ``X-Request-Id`` or the gateway's) and, once a
task exists, its ``task_uid``: the id given finds the lines naming it, then those naming the other
id of the same job (a request id finds its task's worker lines; a task uid finds the request that
made it). ``--json`` prints the lines as they are.

``python -m infra.logs ID [--json]`` (reads ``VISIONFN_RUN_DIR``'s logs).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infra.settings import get_runner_settings

#: The fields that name a job (a line's own), and the one that lists several (the bridge's batch).
JOB_FIELDS = ("request_id", "task_uid", "chain_uid", "object_key")
LISTED = "request_ids"
#: Printed after the message when a line has them.
SHOWN_FIELDS = (
    "request_id",
    "request_ids",
    "task_uid",
    "owner",
    "route",
    "status",
    "duration",
    "attempt",
    "delivery_id",
    "object_key",
    "cold_start",
)


def read_lines(log_dir: Path) -> Iterator[dict[str, Any]]:
    """Every JSON line of every log (a line that is not JSON is skipped: a crash's last words)."""
    for path in sorted(log_dir.glob("*.log")):
        with path.open("rb") as file:
            for line in file:
                if line.startswith(b"{"):
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict):
                        record.setdefault("function", path.stem)
                        yield record


def _ids(record: dict[str, Any]) -> set[str]:
    return {value for field in JOB_FIELDS if isinstance(value := record.get(field), str)}


def _mentions(record: dict[str, Any], ids: set[str]) -> bool:
    listed = record.get(LISTED)
    return bool(_ids(record) & ids) or (isinstance(listed, list) and any(item in ids for item in listed))


def job_lines(records: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    """The lines of the job ``job_id`` names, in time order."""
    ids = {job_id}
    for _ in range(3):  # request id -> task uid -> (a chain's steps share its request id)
        found = set().union(*(_ids(record) for record in records if _mentions(record, ids)))
        if found <= ids:
            break
        ids |= found
    return sorted((record for record in records if _mentions(record, ids)), key=lambda record: str(record.get("timestamp", "")))


def plain(record: dict[str, Any]) -> str:
    shown = " ".join(f"{field}={record[field]}" for field in SHOWN_FIELDS if field in record)
    when, function, level = record.get("timestamp", ""), record.get("function", ""), record.get("level", "")
    return f"{when} {function:<14} {level:<7} {record.get('message', '')}  [{shown}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("id", help="a request id (X-Request-Id) or a task uid")
    parser.add_argument("--json", action="store_true", help="print the JSON lines as they are")
    options = parser.parse_args()
    log_dir = get_runner_settings().log_dir
    lines = job_lines(list(read_lines(log_dir)), options.id)
    if not lines:
        print(f"no line of {log_dir} names {options.id!r}", file=sys.stderr)
        return 1
    for record in lines:
        print(json.dumps(record) if options.json else plain(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())

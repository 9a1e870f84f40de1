"""Read a W&B offline run file (`run-ID.wandb`) back: the records are wandb's own protobuf
`Record`s (`wandb.proto.wandb_internal_pb2`), framed as a LevelDB-style log (a 7-byte
`:W&B` header, then 32 KiB blocks of records with a crc32/length/type header each)."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

BLOCK = 32 * 1024
HEADER = 7  # crc32 (4), length (2), type (1)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_run_records(path: Path) -> list[Any]:
    """Every record of the run file, as wandb's protobuf `Record`s."""
    pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending, payloads = 7, b"", []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            payloads.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            payloads.append(pending + chunk)
        else:
            break  # zero padding at the end of the file
    records = []
    for payload in payloads:
        record = pb.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def wandb_history(path: Path) -> list[dict[str, Any]]:
    """The logged rows (`run.log` calls), keys as logged, values decoded from JSON, without
    W&B's own `_step`, `_runtime`, `_timestamp`."""
    rows = []
    for record in wandb_run_records(path):
        if record.WhichOneof("record_type") != "history":
            continue
        row = {(item.key or "/".join(item.nested_key)): json.loads(item.value_json)
               for item in record.history.item}
        rows.append({k: v for k, v in row.items() if not k.startswith("_")})
    return rows


def wait_for_rows(paths: list[Path], count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The history rows of `paths` (in order), once `count` are on disk: W&B's service
    process writes the last records of an offline run shortly after `finish()` returns."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [row for path in paths for row in wandb_history(path)]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)

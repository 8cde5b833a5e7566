"""The database file (shadowgate_db) in a storage format the `duckdb` CLI people have can open.

The file holds only views over the Parquet segments, and views need nothing a newer format
brings. DuckDB writes a new file in its own newest format (2.0's here), which the 1.x CLIs
refuse ("Trying to read a database file with version number 69, but we can only read versions
between 64 and 68"). So the file is attached with STORAGE_VERSION 'v1.0.0' (header version 64),
which every DuckDB from 1.0 on reads; a file an earlier release wrote in a newer format is
rewritten in it once, everything in it copied (an analyst's own views too).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

VIEW_FILE_STORAGE = "v1.0.0"
VIEW_FILE_VERSION = 64  # the version number in the header of a file in that format
_MAGIC = b"DUCK"


def storage_version_of(path: Path) -> int | None:
    """The storage version in a DuckDB file's header; None without a file or a DuckDB header."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except FileNotFoundError:
        return None
    if len(head) < 20 or head[8:12] != _MAGIC:
        return None
    return int.from_bytes(head[12:20], "little")


def open_view_file(path: Path) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the view file, in VIEW_FILE_STORAGE (created if
    missing, rewritten if newer). Raises duckdb.Error as duckdb.connect would."""
    version = storage_version_of(path)
    if version is not None and version != VIEW_FILE_VERSION:
        rewrite_in_view_format(path, version)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{_sql(path)}' AS views_file (STORAGE_VERSION '{VIEW_FILE_STORAGE}')")
        con.execute("USE views_file")
    except BaseException:
        con.close()
        raise
    return con


def rewrite_in_view_format(path: Path, version: int) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{_sql(path)}' AS old (READ_ONLY)")
        con.execute(f"ATTACH '{_sql(temporary)}' AS new (STORAGE_VERSION '{VIEW_FILE_STORAGE}')")
        con.execute("COPY FROM DATABASE old TO new")
    finally:
        con.close()
    os.replace(temporary, path)  # a reader holding the old file keeps it until it closes
    log.info(
        "shadowgate: rewrote %s from storage version %d to DuckDB %s's format, which the 1.x CLI opens",
        path,
        version,
        VIEW_FILE_STORAGE,
    )


def _sql(path: Path) -> str:
    return path.as_posix().replace("'", "''")

"""`shadowgate scan FILE|-`: run the DLP detectors on any text, one JSON object per finding.

    {"start": 17, "end": 37, "type": "AWS_ACCESS_KEY", "detector": "aws"}

`shadowgate scan --types` lists every type (the names a policy's dlp.types takes) and its kind.

Offsets are character offsets into the text decoded as UTF-8 (invalid bytes become U+FFFD, one
character each). This is how a security team tries the rules before turning them on. The values
themselves are never printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shadowgate.dlp import TYPES
from shadowgate.dlp import Scanner


def list_types() -> int:
    """Every finding type a policy's dlp.types may name, with its kind (secret or pii), sorted."""
    sys.stdout.write("".join(f"{name}\t{kind}\n" for name, kind in sorted(TYPES.items())))
    return 0


def run_scan(path: str | None) -> int:
    if path is None:
        print("shadowgate scan: name a file, '-' for stdin, or --types for the list of types", file=sys.stderr)
        return 2
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as e:
        print(f"shadowgate scan: {path}: {e.strerror or e}", file=sys.stderr)
        return 2
    text = data.decode("utf-8", errors="replace")
    out = sys.stdout
    for f in Scanner().scan(text):
        out.write(json.dumps({"start": f.start, "end": f.end, "type": f.type, "detector": f.detector}) + "\n")
    out.flush()
    return 0

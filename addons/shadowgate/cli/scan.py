"""`shadowgate scan FILE|-`: run the DLP detectors on any text, one JSON object per finding.

    {"start": 17, "end": 37, "type": "AWS_ACCESS_KEY", "detector": "aws"}

Offsets are character offsets into the text decoded as UTF-8 (invalid bytes become U+FFFD, one
character each). This is how a security team tries the rules before turning them on. The values
themselves are never printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shadowgate.dlp import Scanner


def run_scan(path: str) -> int:
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

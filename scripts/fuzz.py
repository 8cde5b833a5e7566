"""Run the parser and DLP property tests far longer than CI does.

    uv run python scripts/fuzz.py            # 50x the CI examples (about 250k cases)
    uv run python scripts/fuzz.py --scale 200

Every wire-format parser, stream framing and DLP detector must never raise, keep its buffers
bounded and return valid, non-overlapping offsets, whatever the input.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROPERTY_TESTS = ["-k", "hypothesis or never or fuzz or robust or arbitrary or garbage or pathological"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=50, help="multiplier on the CI example counts")
    args = parser.parse_args()
    env = {**os.environ, "SG_FUZZ_SCALE": str(args.scale)}
    started = time.monotonic()
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_wireformats.py",
        "tests/test_dlp.py",
        *PROPERTY_TESTS,
    ]
    print(f"SG_FUZZ_SCALE={args.scale} {' '.join(command)}", flush=True)
    code = subprocess.call(command, cwd=ROOT, env=env)
    print(
        f"fuzzed for {time.monotonic() - started:.0f} s at {args.scale}x the CI examples: {'ok' if code == 0 else 'FAILED'}"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())

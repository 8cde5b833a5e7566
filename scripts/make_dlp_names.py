"""Write addons/shadowgate/dlp/data/census_names.txt, the name lists of the opt-in PERSON_NAME detector.

    pip install names==0.3.0 (into any scratch environment), then
    uv run python scripts/make_dlp_names.py PATH/TO/site-packages/names

The lists are the US Census Bureau's 1990 name files (public domain: dist.male.first,
dist.female.first, dist.all.last, by frequency), as the `names` package (MIT) ships them: every
first name (5,163 distinct) and the 20,000 most frequent last names (about 78 % of the
population by the Census' cumulative share). One name a line, capitalised, "#first" and "#last"
start the two sections. Nothing is downloaded at run time.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "addons" / "shadowgate" / "dlp" / "data" / "census_names.txt"
LAST_NAMES = 20_000


def read(path: Path, top: int | None = None) -> list[str]:
    names = [line.split()[0].capitalize() for line in path.read_text(encoding="ascii").splitlines() if line.strip()]
    return names[:top] if top else names


def main() -> int:
    src = Path(sys.argv[1])
    first = sorted(set(read(src / "dist.male.first")) | set(read(src / "dist.female.first")))
    last = sorted(set(read(src / "dist.all.last", LAST_NAMES)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("#first\n" + "\n".join(first) + "\n#last\n" + "\n".join(last) + "\n", encoding="ascii")
    print(f"{len(first)} first names, {len(last)} last names -> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

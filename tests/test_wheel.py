"""The built wheel works on its own: installed into a clean virtual environment outside the
checkout, `shadowgate` finds its catalog and runs the demo from another directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UV = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    assert UV, "uv is needed to build the wheel (.ci/run installs it)"
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([UV, "build", "--wheel", "-q", "-o", str(work / "dist")], cwd=ROOT, check=True, timeout=300)
    (wheel,) = (work / "dist").glob("*.whl")
    venv = work / "venv"
    subprocess.run([UV, "venv", "-q", "-p", sys.executable, str(venv)], check=True, timeout=120)
    subprocess.run(
        [UV, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), f"{wheel}[demo]"],
        check=True,
        timeout=600,
    )
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    return wheel, venv / "bin" / "shadowgate", elsewhere


def test_the_wheel_installs_one_top_level_package_with_its_data(installed):
    wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"shadowgate"}
    assert "shadowgate/data/providers.yaml" in names
    assert "shadowgate/storage/unit_prices.yaml" in names  # per-unit prices (red-team F59)
    assert any(n.startswith("shadowgate/demo/cases/") and n.endswith(".json") for n in names)
    assert not any(n.startswith(("addons/", "reports/", "tests/")) for n in names)


def test_catalog_match_works_from_another_directory(installed):
    _, shadowgate, elsewhere = installed
    done = subprocess.run(
        [shadowgate, "catalog", "match", "api.openai.com"], cwd=elsewhere, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["api.openai.com", "openai", "api"]


def test_the_demo_runs_from_the_installed_wheel(installed):
    _, shadowgate, elsewhere = installed
    done = subprocess.run([shadowgate, "demo"], cwd=elsewhere, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for model in ("gpt-4o-mini", "claude-sonnet-5", "text-embedding-3-small"):
        assert model in done.stdout

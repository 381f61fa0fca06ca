"""The wheel the image installs (Dockerfile: pip wheel, then install without the source tree)
carries every file of the packages: Flux queries, migrations, the proto, the dashboard pages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fleetwatch", "ingest", "stores", "analytics", "dashboards", "simulator")


def _tracked() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", *PACKAGES], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return set(listed.stdout.split())


def test_wheel_holds_every_file_of_the_packages(tmp_path: Path) -> None:
    """Nothing the running services read is left behind in the source tree."""
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("fleetwatch-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
    tracked = _tracked()
    assert {name for name in tracked if name.endswith(".flux")}  # the check sees them
    assert tracked - packed == set()

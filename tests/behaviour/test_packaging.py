"""An installed (non-editable) biobench carries its migrations and its benchmarks file."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_migrations_and_benchmarks(tmp_path: Path) -> None:
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("biobench-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        benchmarks = archive.read("biobench/benchmarks.yaml").decode()
    for migration in (ROOT / "migrations").rglob("*.py"):
        assert f"biobench/migrations/{migration.relative_to(ROOT / 'migrations')}" in names
    assert "biobench/migrations/script.py.mako" in names
    assert benchmarks == (ROOT / "benchmarks.yaml").read_text()
    for module in (ROOT / "src" / "biobench").rglob("*.py"):  # every package, new ones too
        assert f"biobench/{module.relative_to(ROOT / 'src' / 'biobench')}" in names, module
    for asset in (ROOT / "src" / "biobench" / "report").glob("[st]*/*"):  # templates, static
        assert f"biobench/{asset.relative_to(ROOT / 'src' / 'biobench')}" in names, asset

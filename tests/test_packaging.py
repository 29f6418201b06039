"""pyproject.toml lists every package, so a wheel carries all of finops (and its migrations)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_finops_package_is_listed() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "finops").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert "finops.migrations" in listed


def test_every_data_file_is_shipped() -> None:
    """A stylesheet or catalog that a wheel left behind would only fail in production."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    data = setuptools["package-data"]
    missing = []
    for path in (ROOT / "finops").rglob("*"):
        if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        parts = path.relative_to(ROOT).parts
        for cut in range(len(parts) - 1, 0, -1):  # the deepest listed package holding the file
            package = ".".join(parts[:cut])
            if package in setuptools["packages"]:
                inside = Path(*parts[cut:])
                if not any(
                    inside.match(glob) and len(inside.parts) == len(Path(glob).parts)
                    for glob in data.get(package, [])
                ):
                    missing.append(f"{package}: {inside}")
                break
    assert not missing, f"add to [tool.setuptools.package-data]: {missing}"

"""The budgets in force are read back from the database while the folder is unchanged.

What is asserted: the cached answer equals a fresh read in every case (good files, a broken
edit keeping the last good version, a file added or removed, an edit back and forth), on
SQLite and PostgreSQL; and a cached read loads neither YAML nor pydantic.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from finops.usecases.budgets import _read_folder, budgets_in_force
from finops.usecases.ledger import Ledger

GOOD = """budgets:
  - flow: support
    owner: "@dana"
    daily_cap_usd: 100
    on_breach: block
"""
OTHER = """budgets:
  - match: {flow: "search-*", tags: {team: search}}
    name: search
    owner: U04SEARCH01
    daily_cap_usd: "12.5"
    thresholds: [0.8, 1.0]
    timezone: Europe/Berlin
"""


def _same(ledger: Ledger, folder: Path) -> None:
    cached = budgets_in_force(ledger, folder)
    assert cached == _read_folder(ledger, folder)
    assert budgets_in_force(ledger, folder) == cached  # the second read is the cached one


def test_cached_answers_equal_a_fresh_read_through_every_kind_of_edit(ledger: Ledger, tmp_path: Path) -> None:
    folder = tmp_path / "budgets"
    folder.mkdir()
    (folder / "support.yaml").write_text(GOOD)
    _same(ledger, folder)
    (folder / "search.yaml").write_text(OTHER)  # a file added
    _same(ledger, folder)
    assert {b.key for b in budgets_in_force(ledger, folder).budgets} == {"support", "search"}
    (folder / "support.yaml").write_text(GOOD.replace("100", "100$"))  # a broken edit
    found = budgets_in_force(ledger, folder)
    assert found.broken and any("last good version" in m for m in found.messages)
    assert [b.daily_cap_usd for b in found.budgets if b.key == "support"] == [100]
    _same(ledger, folder)
    (folder / "support.yaml").write_text(GOOD.replace("100", "7"))  # fixed, with a new cap
    assert [b.daily_cap_usd for b in budgets_in_force(ledger, folder).budgets if b.key == "support"] == [7]
    (folder / "support.yaml").write_text(GOOD)  # back to the first content: no stale answer
    assert [b.daily_cap_usd for b in budgets_in_force(ledger, folder).budgets if b.key == "support"] == [100]
    (folder / "search.yaml").unlink()
    assert [b.key for b in budgets_in_force(ledger, folder).budgets] == ["support"]
    _same(ledger, folder)


def test_an_edit_that_keeps_size_and_mtime_is_still_seen(sqlite_ledger: Ledger, tmp_path: Path) -> None:
    folder = tmp_path / "budgets"
    folder.mkdir()
    path = folder / "support.yaml"
    path.write_text(GOOD)
    before = path.stat()
    assert budgets_in_force(sqlite_ledger, folder).budgets[0].on_breach == "block"
    path.write_text(GOOD.replace("block", "alert"))  # same length
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert budgets_in_force(sqlite_ledger, folder).budgets[0].on_breach == "alert"


def test_a_cached_check_loads_neither_yaml_nor_pydantic(sqlite_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "budgets"
    folder.mkdir()
    (folder / "support.yaml").write_text(GOOD)
    db = sqlite_url.removeprefix("sqlite:///")
    env = {**os.environ, "FINOPS_BUDGETS_DIR": str(folder)}
    subprocess.run(
        [sys.executable, "-m", "finops", "db", "upgrade", "--db", db],
        env=env,
        check=True,
        capture_output=True,
    )
    probe = (
        "import sys\nfrom finops.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in ('yaml', 'pydantic') if m in sys.modules), file=sys.stderr)\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", probe, "check", "support", "--db", db],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    assert all('"decision": "allow"' in run.stdout for run in runs)
    assert "LOADED ['pydantic', 'yaml']" in runs[0].stderr  # the first read validates the files
    assert "LOADED []" in runs[1].stderr  # the second reads what the first stored

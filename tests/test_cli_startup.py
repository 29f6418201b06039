"""The console script builds only the command it runs, and imports only what that command needs.

These run the real `finops` entry point in a subprocess: the lazy root group is what users get.
Speed itself is measured by bench/cli.py, not here; what is asserted is the cause of speed
(which modules a command loads), which does not depend on how busy the machine is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finops.cli.main import app

FINOPS = [sys.executable, "-c", "from finops.cli.main import main; main()"]


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FINOPS, *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )


def test_help_lists_every_command_the_app_registers(tmp_path: Path) -> None:
    import typer.main

    eager = typer.main.get_command(app)
    done = _run(["--help"], tmp_path)
    assert done.returncode == 0
    listed = [line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == list(eager.commands)  # type: ignore[attr-defined]


def test_sub_commands_and_groups_still_resolve(tmp_path: Path) -> None:
    assert "Check budget files" in _run(["budgets", "validate", "--help"], tmp_path).stdout
    assert "How much was spent" in _run(["spend", "--help"], tmp_path).stdout
    bad = _run(["spnd"], tmp_path)
    assert bad.returncode == 2
    assert "No such command 'spnd'" in bad.stderr


def test_every_command_resolves_alone_in_a_fresh_process(tmp_path: Path) -> None:
    """Each command module registers itself when one of its commands is asked for: every
    top-level name must reach its module (finops/cli/main.py:_LOADERS) from a cold start."""
    import typer.main

    names = list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert len(names) > 15
    for name in names:
        done = _run([name, "--help"], tmp_path)
        assert done.returncode == 0 and "Usage: finops" in done.stdout, (name, done.stderr)


_PROBE = """
import sys
from finops.cli.main import main
try:
    main()
except SystemExit:
    pass
heavy = ("alembic", "pydantic", "pydantic_settings", "rich", "yaml", "sqlalchemy.dialects.postgresql")
sys.stderr.write("LOADED " + " ".join(m for m in heavy if m in sys.modules) + "\\n")
"""


def _loaded(args: list[str], cwd: Path, **env: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    line = [x for x in done.stderr.splitlines() if x.startswith("LOADED")][-1]
    return set(line.split()[1:])


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("startup")
    usage = folder / "usage.jsonl"
    usage.write_text(
        json.dumps(
            {
                "id": "a",
                "ts": "2026-11-03T10:00:00Z",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "flow": "support",
                "input_tokens": 1000,
                "output_tokens": 10,
            }
        )
        + "\n"
    )
    done = _run(["ingest", str(usage), "--db", str(folder / "f.db")], folder)
    assert done.returncode == 0, done.stderr
    return folder


def test_spend_and_version_load_no_alembic_pydantic_rich_or_postgres(demo_db: Path) -> None:
    assert _loaded(["--version"], demo_db) == set()
    assert _loaded(["spend", "--db", str(demo_db / "f.db")], demo_db) == set()


def test_check_loads_no_alembic_rich_or_postgres(demo_db: Path) -> None:
    (demo_db / "budgets").mkdir(exist_ok=True)
    loaded = _loaded(["check", "support", "--db", str(demo_db / "f.db")], demo_db)
    assert not loaded & {"alembic", "rich", "pydantic_settings", "sqlalchemy.dialects.postgresql"}

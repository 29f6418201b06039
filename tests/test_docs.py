"""The README documents every command, and its examples are valid."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from finops.catalog import load_overrides
from finops.cli.main import app
from finops.domain.usage import parse_usage
from finops.usecases.demo import load_demo
from tests.conftest import make_ledger
from tests.daemon_proc import DaemonProcess

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _commands(group: typer.Typer, prefix: str = "finops") -> list[str]:
    names = [f"{prefix} {c.name or c.callback.__name__.replace('_', '-')}" for c in group.registered_commands]
    for sub in group.registered_groups:
        names += _commands(sub.typer_instance, f"{prefix} {sub.name}")
    return names


def test_every_command_is_documented_in_the_readme() -> None:
    commands = _commands(app)
    assert len(commands) >= 12
    missing = [c for c in commands if f"`{c}" not in README]
    assert not missing, f"undocumented in README.md: {missing}"


def test_readme_usage_record_example_is_valid() -> None:
    block = re.search(r"```json\n(\{\"id\": \"req_01HV\".*?)\n```", README, re.S)
    assert block is not None
    record = parse_usage(json.loads(block.group(1)), user_key=b"k")
    assert record.input_tokens == 1200 and record.user_hash is not None


def test_readme_override_file_example_loads(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(# prices.yaml.*?)\n```", README, re.S)
    assert block is not None
    path = tmp_path / "prices.yaml"
    path.write_text(block.group(1))
    entries, discounts = load_overrides(path)
    assert [e.model for e in entries] == ["acme-llama-70b-internal"] and len(discounts) == 1


def test_readme_walk_through_shows_its_own_record_in_todays_spend(tmp_path: Path) -> None:
    """The curl lines of "Try it", run by bash against `finops run` on a demo database."""
    if shutil.which("curl") is None or shutil.which("bash") is None:
        pytest.skip("the walk-through needs curl and bash")
    block = re.search(r"```sh\n(TS=\$\(date -u .*?)```", README, re.S)
    assert block is not None
    url = f"sqlite:///{tmp_path / 'finops.db'}"
    ledger = make_ledger(url)
    load_demo(ledger, days=1)  # today's incidents; the walk-through asks about code-review's
    ledger.close()
    daemon = DaemonProcess(tmp_path, url, budgets=REPO / "budgets", FINOPS_INGEST_TOKENS="").start()
    try:
        script = block.group(1).replace("localhost:8787", f"127.0.0.1:{daemon.port}")
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    finally:
        daemon.stop()
    assert done.returncode == 0, done.stderr
    stored, spend, check = (json.loads(line) for line in done.stdout.splitlines())
    assert (stored["stored"], stored["rejected"]) == (1, 0)
    assert [(r["flow"], r["requests"], r["cost_usd"]) for r in spend["rows"]] == [
        ("my-app", 1, "0.006000000")
    ]
    assert (check["decision"], check["reason"].split(" is ")[0]) == ("deny", "budget code-review")

"""The README documents every command, and its examples are valid."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from finops.catalog import load_overrides
from finops.cli.main import app
from finops.domain.usage import parse_usage

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


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

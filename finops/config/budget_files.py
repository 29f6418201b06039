"""Budget files (docs/design.md §4): read ``budgets/*.yaml``, say ``file:line: what is wrong`` plainly.

Flow owners edit these files by hand, so every problem names the file and line
and reads like advice, never like a pydantic dump. The rules:

* A file holds one top-level key, ``budgets:``, a list of budgets
  (:class:`finops.domain.budgets.Budget`).
* YAML is read with a safe loader; numbers become exact ``Decimal`` from their
  text, and any non-standard tag (``!!python/object...``) is refused before
  anything is constructed. Duplicate keys are an error (YAML would keep the last).
* **A file with any error yields no budgets at all.** The caller keeps the last
  good version of that file in force (docs/design.md §4: a broken file "leaves the other
  budgets, and the last good version of that file, in force"), so half a file
  never silently replaces a whole one. Other files load normally.
* Across the directory, two budgets with the same ``key`` are an error on the
  second (its file is then treated as broken too); budgets whose selectors can
  count the same spend get a warning.
* Only regular files directly in the folder are read. Every entry named like a
  budget file is looked at with ``lstat`` first: a symlink (wherever it points,
  even inside the folder), FIFO, socket, device or directory is an error naming
  what it is, so nothing outside the folder is ever opened, quoted or put in force,
  and nothing can block a reader (opening a FIFO waits for a writer for ever).
  The open itself refuses links and never waits (``O_NOFOLLOW | O_NONBLOCK``) and
  the opened file is checked again, in case the entry was swapped in between.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from finops.config import budget_spec
from finops.config.budget_folder import budget_paths, read_budget_bytes
from finops.config.budget_messages import explain, show, suggest
from finops.config.safe_yaml import MAX_BYTES, TOO_BIG, find, line, line_at, read_yaml
from finops.domain.budgets import Budget, glob_matches
from finops.errors import BudgetFileError

__all__ = [
    "BudgetProblem",
    "BudgetSet",
    "LocatedBudget",
    "budget_json_schema",
    "file_fingerprint",
    "files_digest",
    "load_budget_dir",
    "load_budget_file",
    "load_budget_paths",
    "parse_budget_text",
]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class LocatedBudget:
    """A valid budget and where it was written (for messages that point back at it)."""

    budget: Budget
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class BudgetProblem:
    """One thing wrong (``error``: the file is not used) or worth a look (``warning``)."""

    file: str
    line: int | None
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {'warning: ' if self.severity == 'warning' else ''}{self.message}"


@dataclass(frozen=True)
class BudgetSet:
    """Every budget of a directory that can be used, what is wrong, and which files were read."""

    budgets: list[LocatedBudget] = field(default_factory=list)
    problems: list[BudgetProblem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[BudgetProblem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[BudgetProblem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def broken_files(self) -> frozenset[str]:
        """Files that contributed no budget because of an error: keep their last good version."""
        return frozenset(p.file for p in self.errors if p.file in self.files)

    def summary(self) -> str:
        """``3 files, 7 budgets: 1 error, 1 warning`` (budgets counts only those in force)."""
        counts = f"{_n(len(self.files), 'file')}, {_n(len(self.budgets), 'budget')}"
        if not self.problems:
            return f"{counts}: no problems"
        return f"{counts}: {_n(len(self.errors), 'error')}, {_n(len(self.warnings), 'warning')}"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# --------------------------------------------------------------------------- one file
def _budget(item: yaml.Node, data: object, file: str) -> tuple[LocatedBudget | None, list[BudgetProblem]]:
    """Validate one list item; each error at the line of its key, else of the budget's first key."""
    if not isinstance(data, Mapping):
        message = f"each budget is a mapping (flow:, owner:, daily_cap_usd: ...), got {show(data)}"
        return None, [BudgetProblem(file, line(item), message)]
    try:
        budget = budget_spec.Budget.model_validate(data).to_budget()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            both = not loc and data.get("flow") is not None and data.get("match") is not None
            problems.append(
                BudgetProblem(file, line_at(item, ("match",) if both else loc), explain(err, data))
            )
        return None, problems
    return LocatedBudget(budget, file, line(item)), _budget_warnings(budget, item, data, file)


def _budget_warnings(
    budget: Budget, item: yaml.Node, data: Mapping[str, Any], file: str
) -> list[BudgetProblem]:
    """Valid, but probably not what the owner meant."""
    warnings = []
    if budget.flow is not None and "[" in budget.flow:
        message = (
            f"flow {budget.flow!r} is an exact flow name: [...] is no pattern here (nor in match:, "
            "whose only wildcards are * and ?)"
        )
        warnings.append(BudgetProblem(file, line_at(item, ("flow",)), message, "warning"))
    if "slack_channel" in data and data["slack_channel"] is None:
        message = (
            "slack_channel is empty: in YAML an unquoted # starts a comment; quote the channel, "
            'e.g. slack_channel: "#support-ai-costs"'
        )
        warnings.append(BudgetProblem(file, line_at(item, ("slack_channel",)), message, "warning"))
    return warnings


def _budget_list(root: yaml.Node, data: object, file: str) -> tuple[yaml.Node | None, list[BudgetProblem]]:
    """The node of the ``budgets:`` list, or why the file does not have that shape."""
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, Mapping):
        shape = "a list" if isinstance(root, yaml.SequenceNode) else show(data)
        message = f"expected budgets: at the top level, got {shape}; put the list of budgets under budgets:"
        return None, [BudgetProblem(file, line(root), message)]
    problems = []
    for key, _ in root.value:
        name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
        if name != "budgets":
            hint = " (did you mean budgets?)" if suggest(name, ["budgets"]) else ""
            message = (
                f"unknown top-level key {show(name)}{hint}: "
                "a budget file has one, budgets:, a list of budgets"
            )
            problems.append(BudgetProblem(file, line(key), message))
    pair = find(root, "budgets")
    if pair is None:
        return None, problems or [BudgetProblem(file, line(root), "expected budgets: at the top level")]
    budgets = data.get("budgets")
    if budgets is None or budgets == []:
        return None, [
            *problems,
            BudgetProblem(file, line(pair[0]), "budgets: is empty: no budgets here", "warning"),
        ]
    if not isinstance(budgets, list) or not isinstance(pair[1], yaml.SequenceNode):
        message = f"budgets must be a list: start each budget with '- ', got {show(budgets)}"
        return None, [*problems, BudgetProblem(file, line(pair[0]), message)]
    return pair[1], problems


def parse_budget_text(text: str, *, file: str) -> tuple[list[LocatedBudget], list[BudgetProblem]]:
    """The budgets of one file's text, or none at all if it has any error (see the module docstring).

    ``file`` is only used in messages. Problems come back sorted by line; this never raises
    for bad content.
    """
    document, issues = read_yaml(text)
    problems = [BudgetProblem(file, i.line, i.message) for i in issues]
    if document is None:
        return [], problems
    if document.root is None:
        return [], [BudgetProblem(file, None, "empty file: no budgets here", "warning")]
    problems += [BudgetProblem(file, i.line, i.message) for i in document.issues]
    items, shape = _budget_list(document.root, document.data, file)
    problems += shape
    located: list[LocatedBudget] = []
    if isinstance(items, yaml.SequenceNode):
        for node, value in zip(items.value, document.data["budgets"], strict=True):
            budget, found = _budget(node, value, file)
            problems += found
            located += [budget] if budget is not None else []
    problems += _duplicate_keys(located, same_file=True)
    problems.sort(key=_order)
    return ([] if any(p.severity == "error" for p in problems) else located), problems


def _order(p: BudgetProblem) -> tuple[str, int]:
    return p.file, p.line or 0


def file_fingerprint(path: Path) -> str:
    """A hash of what ``path`` holds, read as budget files are (never through a link, never
    blocking); for an entry that is not read, a hash of why. Names one version of a file."""
    raw = read_budget_bytes(path)
    return hashlib.sha256(raw if isinstance(raw, bytes) else f"not read: {raw}".encode()).hexdigest()


def load_budget_file(path: Path) -> tuple[list[LocatedBudget], list[BudgetProblem]]:
    """Read one budget file. Never raises for a bad file: problems come back with ``file:line``."""
    file = str(path)
    raw = read_budget_bytes(path)
    if isinstance(raw, str):
        return [], [BudgetProblem(file, None, raw)]
    if len(raw) > MAX_BYTES:
        return [], [BudgetProblem(file, None, TOO_BIG)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [
            BudgetProblem(file, raw[: exc.start].count(b"\n") + 1, "not UTF-8 text; save it as UTF-8")
        ]
    return parse_budget_text(text, file=file)


# --------------------------------------------------------------------------- a directory
def _duplicate_keys(budgets: list[LocatedBudget], *, same_file: bool) -> list[BudgetProblem]:
    """Two budgets recorded under one key would share breaches: an error on the second."""
    first: dict[str, LocatedBudget] = {}
    problems = []
    for b in budgets:
        seen = first.setdefault(b.budget.key, b)
        if seen is not b and (seen.file == b.file) == same_file:
            problems.append(
                BudgetProblem(
                    b.file,
                    b.line,
                    f"budget {b.budget.key!r} is already defined at {seen.where}; "
                    "give one of them a distinct name:",
                )
            )
    return problems


def _selector(b: Budget) -> str:
    tags = ",".join(f"{k}={v}" for k, v in sorted(b.tag_filter.items()))
    return f"flow {b.flow_pattern}" + (f", tags {tags}" if tags else "")


def _shared_spend(a: Budget, b: Budget) -> str | None:
    """What spend two budgets both count, when that is plain from their selectors; else None."""
    if a.flow is not None and b.flow is not None:
        return a.flow if a.flow == b.flow else None
    if a.match is not None and b.match is not None:
        same_tags = all(b.match.tags.get(k, v) == v for k, v in a.match.tags.items())
        return f"flows matching {a.match.flow}" if a.match.flow == b.match.flow and same_tags else None
    exact, glob = (a, b) if a.flow is not None else (b, a)
    assert exact.flow is not None and glob.match is not None
    return exact.flow if not glob.match.tags and glob_matches(glob.match.flow, exact.flow) else None


def _overlaps(budgets: list[LocatedBudget]) -> list[BudgetProblem]:
    problems = []
    for i, later in enumerate(budgets):
        for earlier in budgets[:i]:
            shared = _shared_spend(earlier.budget, later.budget)
            if shared is not None:
                problems.append(
                    BudgetProblem(
                        later.file,
                        later.line,
                        f"overlaps with {earlier.where} ({_selector(earlier.budget)}): "
                        f"spend of {shared} counts against both",
                        "warning",
                    )
                )
                break
    return problems


def load_budget_dir(directory: Path) -> BudgetSet:
    """Every budget file of ``directory``; a broken file is reported and contributes nothing.

    Raises:
        BudgetFileError: ``directory`` does not exist or is not a directory.
    """
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise BudgetFileError(
            f"budget folder {directory} {what}: create it, or point FINOPS_BUDGETS_DIR "
            "(or `finops budgets validate DIR`) at the folder of budget files"
        )
    paths = budget_paths(directory)
    return _load_files(paths, empty=[] if paths else [directory])


def load_budget_paths(paths: Sequence[Path]) -> BudgetSet:
    """Budget files named one by one and folders of them (``finops budgets validate a.yaml b/``),
    checked as one set: a key used twice or an overlap across them is reported as in a folder.

    Raises:
        BudgetFileError: a path does not exist.
    """
    files: list[Path] = []
    empty: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = budget_paths(path)
            files += found
            if not found:
                empty.append(path)
        elif path.exists() or path.is_symlink():  # read as the daemon would: a link is reported
            files.append(path)
        else:
            raise BudgetFileError(
                f"budget file or folder {path} does not exist: name budget files (*.yaml) or folders of them"
            )
    return _load_files(list(dict.fromkeys(files)), empty=empty)


def _load_files(paths: list[Path], *, empty: list[Path]) -> BudgetSet:
    budgets: list[LocatedBudget] = []
    problems: list[BudgetProblem] = []
    for path in paths:
        found, trouble = load_budget_file(path)
        budgets += found
        problems += trouble
    clashes = _duplicate_keys(budgets, same_file=False)
    broken = {p.file for p in clashes}
    budgets = [b for b in budgets if b.file not in broken]
    problems += clashes + _overlaps(budgets)
    for directory in empty:
        problems.append(
            BudgetProblem(str(directory), None, "no budget files (*.yaml, *.yml) here", "warning")
        )
    problems.sort(key=_order)
    return BudgetSet(budgets=budgets, problems=problems, files=[str(p) for p in paths])


def files_digest(directory: Path) -> str:
    """A fingerprint of the budget files' names, types, sizes and mtimes: changes when a file is
    saved or replaced (by a link, say). Taken with ``lstat``: no link is followed, nothing opened."""
    digest = hashlib.sha256()
    if directory.is_dir():
        for path in budget_paths(directory):
            try:
                st = os.lstat(path)
            except OSError:  # removed since the listing: the next look sees the change
                continue
            digest.update(
                f"{path.name}\0{st.st_mode}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\n".encode()
            )
    else:
        digest.update(b"<no directory>")
    return digest.hexdigest()


# --------------------------------------------------------------------------- JSON Schema
_DESCRIPTIONS = {
    "slack_channel": 'Channel for alerts, quoted: "#support-ai-costs"',
    "monthly_cap_usd": "USD per local month (optional)",
    "thresholds": "Fractions of the cap that alert once per local day (1.0 = the cap)",
    "timezone": "IANA time zone; the day resets at local midnight",
    "on_breach": "alert, or block: `finops check` denies once the cap is reached",
    "max_cost_per_success_usd": "Alert when the cost per successful outcome is above this",
    "max_tool_calls_per_request": "Fan-out guardrail: alert above this many tool calls in one request",
}


def budget_json_schema() -> dict[str, Any]:
    """JSON Schema of a budget file, for editors (e.g. yaml-language-server's ``$schema`` comment)."""
    schema = budget_spec.Budget.model_json_schema()
    defs = schema.pop("$defs", {})
    for key, text in _DESCRIPTIONS.items():
        schema["properties"][key].setdefault("description", text)
    schema["oneOf"] = [{"required": ["flow"]}, {"required": ["match"]}]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "finops budget file",
        "description": "Budgets for LLM spend (budgets/*.yaml): a daily cap per flow, alerts at "
        "thresholds, optional monthly cap and block on breach.",
        "type": "object",
        "properties": {"budgets": {"type": "array", "items": {"$ref": "#/$defs/Budget"}}},
        "required": ["budgets"],
        "additionalProperties": False,
        "$defs": {**defs, "Budget": schema},
    }

"""Issue 10, item 5: hostile YAML is a ``file:line: what is wrong``, never a crash or a hang.

Deep nesting (``budgets: [[[[...``), files over 1 MiB, alias bombs and huge numbers each come
back as a plain problem; the daemon starts with such a file in the folder and keeps re-reading
the others while it stays there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.config.budget_files import load_budget_dir, load_budget_file, parse_budget_text
from finops.config.budget_spec import parse_budget
from finops.config.safe_yaml import MAX_DEPTH, MAX_VALUES, read_yaml
from finops.daemon.cycle import Daemon
from finops.settings import Settings

GOOD = 'budgets:\n  - flow: support-gpt-en\n    owner: "U0DANA123"\n    daily_cap_usd: 5\n'
BUDGET = "budgets:\n  - flow: x\n    owner: y\n    daily_cap_usd: {}\n"


def bounded(work: Callable[[], Any]) -> Any:
    """``work()``'s result; fails (rather than hangs the suite) if it never ends."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # RecursionError was the bug: hand it to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "did not finish"
    if "error" in box:
        raise box["error"]
    return box["result"]


def finishes(text: str) -> list[str]:
    """The problems of ``text`` as lines."""
    problems: list[str] = bounded(lambda: [str(p) for p in parse_budget_text(text, file="f.yaml")[1]])
    return problems


def laughs(levels: int = 9) -> str:
    text = "l0: &l0 [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, levels + 1):
        text += f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n"
    return text


# ------------------------------------------------------------------ nesting


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("budgets: " + "[" * 20_000, 1),
        ("budgets: " + "[" * 20_000 + "]" * 20_000 + "\n", 1),
        ("budgets: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n", 1),
        ("budgets:\n" + "".join(" " * i + "-\n" for i in range(1_000)), 33),
        ("budgets:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 1_000)), 32),
    ],
    ids=["unclosed-flow-lists", "closed-flow-lists", "flow-mappings", "block-lists", "block-mappings"],
)
def test_deep_nesting_is_one_problem_with_its_line(text: str, line: int) -> None:
    assert finishes(text) == [f"f.yaml:{line}: nested deeper than {MAX_DEPTH} levels"]


def test_nesting_up_to_the_limit_is_read_and_one_more_level_is_refused() -> None:
    at_limit, issues = read_yaml("[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1))
    assert at_limit is not None and issues == []
    refused, issues = read_yaml("[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH)
    assert refused is None and [i.message for i in issues] == [f"nested deeper than {MAX_DEPTH} levels"]


def test_deep_nesting_does_not_crash_validate(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text("budgets: " + "[" * 20_000)
    (tmp_path / "good.yaml").write_text(GOOD)
    result = CliRunner().invoke(app, ["budgets", "validate", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'deep.yaml'}:1: nested deeper than {MAX_DEPTH} levels"
    ]
    assert result.stdout == "2 files, 1 budget: 1 error, 0 warnings\n"


# ------------------------------------------------------------------ size


def test_a_file_over_1_mib_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as f:
        f.write(GOOD.encode())
        f.truncate(8 << 30)  # 8 GiB, sparse: reading it whole would take the machine down
    exact = tmp_path / "exact.yaml"
    exact.write_bytes(GOOD.encode() + b"#" * ((1 << 20) - len(GOOD) - 1) + b"\n")
    over = tmp_path / "over.yaml"
    over.write_bytes(exact.read_bytes() + b"\n")
    message = "file is larger than 1 MiB; a budget file is a few dozen lines"
    assert [str(p) for p in load_budget_file(huge)[1]] == [f"{huge}: {message}"]
    assert [str(p) for p in load_budget_file(over)[1]] == [f"{over}: {message}"]
    assert [b.budget.key for b in load_budget_file(exact)[0]] == ["support-gpt-en"]
    assert finishes("#" * (1 << 20) + "\n") == [f"f.yaml: {message}"]


# ------------------------------------------------------------------ aliases


def test_a_billion_laughs_is_refused_at_the_anchor_that_explodes() -> None:
    # l4 is 9**4 lists of nine: the first anchor over MAX_VALUES values once expanded
    assert MAX_VALUES == 20_000
    found = finishes(laughs() + "budgets: [*l9]\n")
    assert found == ["f.yaml:5: aliases expand this to more than 20,000 values; use fewer aliases"]
    wide = "budgets:\n  - &b {flow: x, owner: y, daily_cap_usd: 1, match: [" + ", ".join(["*l3"] * 3) + "]}\n"
    assert finishes(laughs(3) + wide) == [
        "f.yaml:6: aliases expand this to more than 20,000 values; use fewer aliases"
    ]


def test_a_long_chain_of_merge_keys_is_refused_not_ground_through() -> None:
    """Each anchor merges the one before: quadratic to flatten, and as deep as it is long."""
    chain = "m0: &m0 {k0: 1}\n" + "".join(
        f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: 1}}\n" for i in range(1, 3_000)
    )
    assert finishes(chain + "budgets: []\n") == [
        f"f.yaml:{MAX_DEPTH}: aliases nest this deeper than {MAX_DEPTH} levels"
    ]


def test_a_file_of_too_many_values_stops_being_read_at_the_limit() -> None:
    found = finishes("budgets: [" + "1, " * 200_000 + "1]\n")
    assert found == [
        f"f.yaml:1: more than {MAX_VALUES:,} values; a budget file holds a few hundred budgets: "
        "split it into several files"
    ]


@pytest.mark.parametrize(
    "text",
    ["a: &a [*a]\nbudgets: []\n", "a: &a {<<: *a}\nbudgets: []\n", "budgets: &b [{flow: x, match: *b}]\n"],
    ids=["list", "merge", "inside-a-budget"],
)
def test_an_alias_inside_its_own_anchor_is_refused(text: str) -> None:
    found = finishes(text)
    assert found == ["f.yaml:1: an alias refers to a value that contains it; copy the value instead"]


def test_anchors_and_merge_keys_of_an_ordinary_file_still_work() -> None:
    text = (
        "budgets:\n  - &base {flow: f0, owner: '@dana', daily_cap_usd: 5, thresholds: [0.5, 1]}\n"
        + "".join(f"  - {{<<: *base, flow: f{i}}}\n" for i in range(1, 500))
    )
    budgets, found = parse_budget_text(text, file="f.yaml")
    assert len(budgets) == 500 and found == []


def test_a_glob_built_to_backtrack_is_matched_in_bounded_time() -> None:
    """``*a*a*a...b`` against ``aaaa...``: a regex would backtrack exponentially, every check."""
    budget = parse_budget(match={"flow": "*a" * 127 + "b"}, owner="@o", daily_cap_usd=1)
    assert bounded(lambda: budget.matches("a" * 128, {})) is False
    assert bounded(lambda: budget.matches("a" * 127 + "b", {})) is True


# ------------------------------------------------------------------ numbers and long text


@pytest.mark.parametrize(
    "number",
    [
        "1" + "0" * 5_000,  # over Python's 4,300-digit int limit
        "1" + ":0" * 300_000,  # a YAML 1.1 base-60 int: quadratic to build
        "1" + "0" * 500_000 + ".5",
        "0x" + "f" * 200,
        "0b" + "1" * 500,
    ],
    ids=["int", "sexagesimal", "float", "hex", "binary"],
)
def test_a_huge_number_is_one_short_problem_at_its_line(number: str) -> None:
    found = finishes(BUDGET.format(number))
    assert found == ["f.yaml:4: number longer than 100 characters"]


@pytest.mark.parametrize(
    "text",
    [
        BUDGET.format("1e999999999999999999999"),
        BUDGET.format("1.0e-999999999999999999"),
        BUDGET.format("5") + "    thresholds: [1.0e-999999999999999999, 1e9999999999999]\n",
        BUDGET.format("5") + "    max_tool_calls_per_request: 99999999999999999999999999999\n",
    ],
    ids=["big-exponent", "tiny-exponent", "thresholds", "tool-calls"],
)
def test_numbers_with_extreme_exponents_are_plain_problems(text: str) -> None:
    found = finishes(text)
    assert found and all(p.startswith("f.yaml:") and len(p) < 200 for p in found)


@pytest.mark.parametrize(
    "text",
    [
        BUDGET.format("5") + "    timezone: " + "Europe/Berlin" * 40_000 + "\n",
        BUDGET.format("5") + "    ? " + "dialy_cap_usd" * 40_000 + "\n    : 1\n",
        "? " + "budgetz" * 100_000 + "\n: 1\n",
        BUDGET.format("'" + "9" * 500_000 + "'"),
    ],
    ids=["timezone", "budget-key", "top-level-key", "quoted-number"],
)
def test_long_text_is_not_echoed_whole_nor_compared_for_a_suggestion(text: str) -> None:
    found = finishes(text)
    assert found and all(p.startswith("f.yaml:") and len(p) < 300 for p in found)


# ------------------------------------------------------------------ the daemon


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "budgets"
    d.mkdir()
    (d / "a-deep.yaml").write_text("budgets: " + "[" * 20_000)
    (d / "b-laughs.yaml").write_text(laughs() + "budgets: [*l9]\n")
    (d / "c-huge.yaml").write_bytes(b"#" * (2 << 20))
    (d / "support.yaml").write_text(GOOD)
    return d


def test_the_daemon_starts_and_keeps_reloading_the_other_files(db_url: str, folder: Path) -> None:
    daemon = Daemon(Settings(database_url=db_url, budgets_dir=folder, cycle_s=3600), create=True)
    try:
        daemon.start()  # this raised RecursionError: the daemon could not start
        assert [b.key for b in daemon.budgets.budgets] == ["support-gpt-en"]
        assert sorted(Path(f).name for f in daemon.budgets.current.errors_by_file) == [
            "a-deep.yaml",
            "b-laughs.yaml",
            "c-huge.yaml",
        ]
        (folder / "support.yaml").write_text(GOOD.replace("daily_cap_usd: 5", "daily_cap_usd: 7"))
        (folder / "search.yaml").write_text(GOOD.replace("support-gpt-en", "search-rerank"))
        report = daemon.cycle()
        assert report.errors == []
        assert sorted((b.key, b.daily_cap_usd) for b in daemon.budgets.budgets) == [
            ("search-rerank", 5),
            ("support-gpt-en", 7),
        ]
    finally:
        daemon.shutdown()


def test_validate_reports_every_hostile_file_in_one_line_each(folder: Path) -> None:
    result = load_budget_dir(folder)
    assert [(Path(p.file).name, p.line) for p in result.errors] == [
        ("a-deep.yaml", 1),
        ("b-laughs.yaml", 5),
        ("c-huge.yaml", None),
    ]

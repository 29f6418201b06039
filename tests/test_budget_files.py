"""Budget files as flow owners write them: every mistake reported as file:line, in plain words."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from finops.cli.budgets import budgets_app
from finops.cli.main import _FinopsGroup
from finops.config.budget_files import (
    BudgetProblem,
    budget_json_schema,
    files_digest,
    load_budget_dir,
    load_budget_file,
    parse_budget_text,
)
from finops.config.budget_spec import Budget

EXAMPLES = Path(__file__).resolve().parents[1] / "budgets"


def problems(text: str, file: str = "budgets/support.yaml") -> list[str]:
    budgets, found = parse_budget_text(text, file=file)
    if any(p.severity == "error" for p in found):
        assert budgets == [], "a file with an error must yield no budgets"
    return [str(p) for p in found]


def budget_yaml(**keys: str) -> str:
    """One budget; each value is YAML text, ``None`` drops a default key."""
    fields = {"flow": "support-gpt-en", "owner": '"@dana"', "daily_cap_usd": "250"} | keys
    lines = [f"{k}: {v}" for k, v in fields.items() if v != "DROP"]
    return "budgets:\n  - " + "\n    ".join(lines) + "\n"


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- the examples
def test_example_files_all_validate_with_no_problems() -> None:
    result = load_budget_dir(EXAMPLES)
    assert result.problems == []
    assert {Path(f).name for f in result.files} == {"support.yaml", "search.yaml", "platform.yaml"}
    keys = {b.budget.key: b for b in result.budgets}
    assert set(keys) == {"support-gpt-en", "search-prod", "code-review", "platform-agents"}
    assert keys["search-prod"].budget.on_breach == "block"
    assert keys["search-prod"].budget.monthly_cap_usd == Decimal(300)
    assert keys["code-review"].budget.daily_cap_usd == Decimal("20.50")  # read exactly
    assert keys["platform-agents"].budget.timezone == "America/New_York"
    assert keys["platform-agents"].budget.max_tool_calls_per_request == 12


def test_support_example_is_the_design_example_and_keeps_its_lines() -> None:
    (located,), _ = load_budget_file(EXAMPLES / "support.yaml")
    assert located.line == 4 and located.file.endswith("support.yaml")
    b = located.budget
    assert (b.daily_cap_usd, b.monthly_cap_usd, b.max_cost_per_success_usd) == (
        Decimal(250),
        Decimal(6000),
        Decimal("0.04"),
    )
    assert b.thresholds == (Decimal("0.5"), Decimal("0.8"), Decimal("1.0")) and b.timezone == "Europe/Berlin"


def test_budgets_readme_documents_every_key() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    missing = [key for key in Budget.model_fields if f"| `{key}` |" not in readme]
    assert not missing, f"budgets/README.md does not document {missing}"


# --------------------------------------------------------------------------- one budget's mistakes
def test_a_cap_with_a_dollar_sign_is_reported_at_its_line() -> None:
    text = "# support\n\nbudgets:\n  - flow: support-gpt-en\n    owner: '@dana'\n\n    daily_cap_usd: 250$\n"
    assert problems(text) == ["budgets/support.yaml:7: daily_cap_usd must be a positive number, got '250$'"]


@pytest.mark.parametrize("cap", ["0", "-5", "nothing", "[250]", "'NaN'", "true"])
def test_a_cap_that_is_not_a_positive_number_is_an_error(cap: str) -> None:
    text = budget_yaml(daily_cap_usd="" if cap == "nothing" else cap)
    (message,) = problems(text)
    assert message.startswith("budgets/support.yaml:4: daily_cap_usd must be a positive number, got ")


def test_numbers_are_exact_decimals() -> None:
    text = budget_yaml(daily_cap_usd="0.1", monthly_cap_usd="1_000.10", thresholds="[0.3, 0.7]")
    ((located,), found) = parse_budget_text(text, file="b.yaml")
    assert found == []
    assert located.budget.daily_cap_usd == Decimal("0.1") and str(located.budget.daily_cap_usd) == "0.1"
    assert located.budget.monthly_cap_usd == Decimal("1000.10")
    assert located.budget.thresholds == (Decimal("0.3"), Decimal("0.7"))


def test_an_unknown_key_suggests_the_key_meant() -> None:
    text = budget_yaml(dialy_cap_usd="250", daily_cap_usd="DROP")
    assert problems(text) == [
        "budgets/support.yaml:2: daily_cap_usd is required (USD per local day, e.g. 250)",
        "budgets/support.yaml:4: unknown key 'dialy_cap_usd' (did you mean daily_cap_usd?)",
    ]


def test_an_unknown_key_in_match_and_a_non_text_tag_point_at_their_lines() -> None:
    text = (
        "budgets:\n  - owner: '@dana'\n    daily_cap_usd: 1\n    match:\n      flw: 'support-*'\n"
        "      tags:\n        locale: 1\n"
    )
    assert problems(text) == [
        "budgets/support.yaml:5: unknown key 'flw' in match (did you mean flow?)",
        "budgets/support.yaml:7: match.tags.locale must be text, got 1 (put it in quotes)",
    ]


def test_a_key_far_from_any_known_one_lists_the_known_keys() -> None:
    (message,) = problems(budget_yaml(colour="red"))
    assert "unknown key 'colour'; known keys: name, flow, match, owner" in message


def test_tags_outside_match_say_where_they_belong() -> None:
    assert problems(budget_yaml(tags="{locale: en}")) == [
        "budgets/support.yaml:5: unknown key 'tags': tags go under match, e.g. "
        'match: {flow: "support-*", tags: {locale: en}}'
    ]


@pytest.mark.parametrize(
    ("cap", "expected"),
    [
        ("1e999999", "daily_cap_usd must be below 1,000,000,000,000,000 USD, got 1E+999999"),
        ("0.0000000001", "daily_cap_usd must be at least 0.000000001 USD (one nano-dollar), got 1E-10"),
        ("9" * 5000, "number longer than 100 characters"),
    ],
)
def test_amounts_money_cannot_hold_are_errors_not_crashes_later(cap: str, expected: str) -> None:
    assert problems(budget_yaml(daily_cap_usd=cap)) == [f"budgets/support.yaml:4: {expected}"]


def test_a_misspelt_time_zone_suggests_the_real_one() -> None:
    assert problems(budget_yaml(timezone="Europe/Berln")) == [
        "budgets/support.yaml:5: timezone: unknown time zone 'Europe/Berln' (did you mean Europe/Berlin?)"
    ]
    (message,) = problems(budget_yaml(timezone="Mars/Olympus_Mons"))
    assert "unknown time zone 'Mars/Olympus_Mons'; use an IANA name such as Europe/Berlin" in message


def test_flow_and_match_together_is_an_error_at_the_match_line() -> None:
    text = budget_yaml(match="{flow: 'support-*'}")
    assert problems(text) == [
        "budgets/support.yaml:5: give exactly one of flow or match, not both: flow names one flow, "
        "match selects by glob"
    ]


def test_neither_flow_nor_match_is_an_error_at_the_budgets_first_line() -> None:
    (message,) = problems(budget_yaml(flow="DROP"))
    assert message.startswith(
        "budgets/support.yaml:2: give exactly one of flow or match: flow: support-gpt-en"
    )


def test_a_missing_owner_says_what_an_owner_is() -> None:
    for owner in ("DROP", "", "''"):
        assert problems(budget_yaml(owner=owner))[0].endswith(
            "owner is required (a Slack handle like @dana or a user id)"
        )


@pytest.mark.parametrize(
    ("thresholds", "expected"),
    [
        ("[0, 0.5]", "thresholds: each threshold is a fraction of the cap in (0, 10], got 0"),
        ("[0.5, 80]", "thresholds: each threshold is a fraction of the cap in (0, 10], got 80"),
        ("[-0.5]", "thresholds: each threshold is a fraction of the cap in (0, 10], got -0.5"),
        ("[]", "thresholds: needs at least one threshold, e.g. [0.5, 0.8, 1.0]"),
        ("[0.5, 80%]", "thresholds: each is a fraction of the cap, e.g. 0.8 for 80%, got '80%'"),
        ("0.8", "thresholds must be a list of fractions of the cap, e.g. [0.5, 0.8, 1.0], got 0.8"),
    ],
)
def test_thresholds_out_of_range(thresholds: str, expected: str) -> None:
    assert problems(budget_yaml(thresholds=thresholds)) == [f"budgets/support.yaml:5: {expected}"]


def test_on_breach_and_tool_calls_say_what_is_allowed() -> None:
    assert problems(budget_yaml(on_breach="no", max_tool_calls_per_request="8.5")) == [
        "budgets/support.yaml:5: on_breach must be alert or block, got false",
        "budgets/support.yaml:6: max_tool_calls_per_request must be a positive whole number, got 8.5",
    ]


def test_every_mistake_of_a_file_is_reported_at_once() -> None:
    text = budget_yaml(daily_cap_usd="'x'", timezone="Nowhere") + "  - flow: b\n    owner: x\n  - just text\n"
    assert [m.split(": ", 1)[0] for m in problems(text)] == [
        "budgets/support.yaml:4",
        "budgets/support.yaml:5",
        "budgets/support.yaml:6",  # flow b has no daily_cap_usd: the line of its first key
        "budgets/support.yaml:8",
    ]


# --------------------------------------------------------------------------- the YAML itself
@pytest.mark.parametrize(
    "tagged",
    [
        '!!python/object/apply:os.system ["touch {marker}"]',
        "!!python/name:os.system",
        '!!python/object/new:subprocess.Popen [["touch", "{marker}"]]',
        "!custom thing",
    ],
)
def test_code_tags_are_refused_and_nothing_runs(tagged: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = budget_yaml(owner=tagged.format(marker=marker))
    (message,) = problems(text)
    tag = tagged.split(" ")[0]
    assert message == (
        f"budgets/support.yaml:3: YAML tag {tag} is not allowed: "
        "only plain values (text, numbers, lists, mappings)"
    )
    assert not marker.exists()


def test_a_duplicate_key_is_an_error_at_the_second_one() -> None:
    text = budget_yaml() + "    owner: '@eve'\n"
    assert problems(text) == [
        "budgets/support.yaml:5: duplicate key 'owner': already set on line 3; keep one"
    ]


def test_invalid_yaml_names_the_line_and_how_to_quote() -> None:
    (message,) = problems("budgets:\n  - flow: a\n    owner: @dana\n")
    assert message.startswith("budgets/support.yaml:3: not valid YAML: found character '@'")
    assert 'owner: "@dana"' in message


def test_an_unquoted_slack_channel_is_a_comment_and_gets_a_warning() -> None:
    assert problems(budget_yaml(slack_channel="#support-ai-costs")) == [
        "budgets/support.yaml:5: warning: slack_channel is empty: in YAML an unquoted # starts a comment; "
        'quote the channel, e.g. slack_channel: "#support-ai-costs"'
    ]


def test_anchors_and_merge_keys_share_settings_between_budgets() -> None:
    text = (
        "budgets:\n  - &base\n    flow: a\n    owner: '@dana'\n    daily_cap_usd: 10\n"
        "    timezone: Asia/Tokyo\n  - <<: *base\n    flow: b\n"
    )
    budgets, found = parse_budget_text(text, file="f.yaml")
    assert found == [] and [(b.budget.flow, b.budget.timezone, b.line) for b in budgets] == [
        ("a", "Asia/Tokyo", 2),
        ("b", "Asia/Tokyo", 7),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "budget:\n  - flow: a\n",
            [
                "f.yaml:1: unknown top-level key 'budget' (did you mean budgets?): "
                "a budget file has one, budgets:, a list of budgets"
            ],
        ),
        (
            "- flow: a\n",
            [
                "f.yaml:1: expected budgets: at the top level, got a list; "
                "put the list of budgets under budgets:"
            ],
        ),
        (
            "budgets:\n  flow: a\n",
            ["f.yaml:1: budgets must be a list: start each budget with '- ', got a mapping"],
        ),
        (
            "budgets:\n  - support-gpt-en\n",
            ["f.yaml:2: each budget is a mapping (flow:, owner:, daily_cap_usd: ...), got 'support-gpt-en'"],
        ),
    ],
)
def test_the_file_shape_is_checked(text: str, expected: list[str]) -> None:
    assert problems(text, file="f.yaml") == expected


def test_anything_beside_budgets_at_the_top_level_is_an_error_naming_its_line() -> None:
    text = budget_yaml() + "defaults:\n  owner: x\n"
    assert problems(text) == [
        "budgets/support.yaml:5: unknown top-level key 'defaults': a budget file has one, budgets:, "
        "a list of budgets"
    ]


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "---\n", "budgets:\n", "budgets: []\n"])
def test_an_empty_file_is_a_warning(text: str) -> None:
    budgets, found = parse_budget_text(text, file="f.yaml")
    assert budgets == [] and [p.severity for p in found] == ["warning"]
    assert "no budgets here" in found[0].message


def test_a_file_that_is_not_utf8_or_too_big_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"budgets:\n  - flow: caf\xe9\n")
    assert [str(p) for p in load_budget_file(bad)[1]] == [f"{bad}:2: not UTF-8 text; save it as UTF-8"]
    big = write(tmp_path, "big.yaml", "#" * (1 << 21))
    assert (
        load_budget_file(big)[1][0].message == "file is larger than 1 MiB; a budget file is a few dozen lines"
    )


# --------------------------------------------------------------------------- a directory
def test_a_broken_file_is_named_and_the_other_files_still_load(tmp_path: Path) -> None:
    d = tmp_path / "budgets"
    write(d, "a-search.yaml", budget_yaml(flow="search-rerank"))
    write(
        d,
        "b-broken.yaml",
        budget_yaml(flow="broken-flow") + "  - flow: other\n    owner: x\n    daily_cap_usd: 250$\n",
    )
    write(d, "c-support.yml", budget_yaml())
    write(d, ".hidden.yaml", "not: [valid")
    write(d, "notes.txt", "ignored")
    result = load_budget_dir(d)
    assert [Path(f).name for f in result.files] == ["a-search.yaml", "b-broken.yaml", "c-support.yml"]
    assert [str(p) for p in result.problems] == [
        f"{d / 'b-broken.yaml'}:7: daily_cap_usd must be a positive number, got '250$'"
    ]
    assert sorted(b.budget.key for b in result.budgets) == ["search-rerank", "support-gpt-en"]
    assert result.broken_files == {str(d / "b-broken.yaml")}
    assert result.summary() == "3 files, 2 budgets: 1 error, 0 warnings"


def test_the_same_budget_key_in_two_files_is_an_error_on_the_second(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", budget_yaml())
    write(
        tmp_path,
        "b.yaml",
        budget_yaml(flow="other") + "  - flow: support-gpt-en\n    owner: x\n    daily_cap_usd: 1\n",
    )
    result = load_budget_dir(tmp_path)
    assert [str(p) for p in result.problems] == [
        f"{tmp_path / 'b.yaml'}:5: budget 'support-gpt-en' is already defined at {tmp_path / 'a.yaml'}:2; "
        "give one of them a distinct name:"
    ]
    assert [b.budget.key for b in result.budgets] == ["support-gpt-en"]  # b.yaml is not used at all
    assert result.broken_files == {str(tmp_path / "b.yaml")}


def test_the_same_budget_key_twice_in_one_file_is_an_error() -> None:
    text = budget_yaml() + "  - flow: support-gpt-en\n    owner: x\n    daily_cap_usd: 1\n"
    assert problems(text) == [
        "budgets/support.yaml:5: budget 'support-gpt-en' is already defined at budgets/support.yaml:2; "
        "give one of them a distinct name:"
    ]


def _budget(selector: str, name: str) -> str:
    return f"  - {selector}\n    name: {name}\n    owner: x\n    daily_cap_usd: 1\n"


def test_budgets_that_count_the_same_spend_get_an_overlap_warning(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", "budgets:\n" + _budget("match: {flow: 'support-*'}", "all-support"))
    write(
        tmp_path,
        "y.yaml",
        "budgets:\n"
        + _budget("flow: support-gpt-en", "gpt-en")  # matched by x's glob: warning
        + _budget("flow: support-gpt-en", "gpt-en-again")  # same flow as gpt-en: warning
        + _budget("match: {flow: 'search-*', tags: {env: prod}}", "search-prod")
        + _budget("match: {flow: 'search-*', tags: {env: dev}}", "search-dev")  # disjoint tags: fine
        + _budget("match: {flow: 'search-*', tags: {env: prod, team: a}}", "search-a")  # same glob: warning
        + _budget("match: {flow: 'code-*', tags: {env: prod}}", "code-prod")
        + _budget("flow: code-review", "code-review"),  # glob has a tag filter: fine
    )
    result = load_budget_dir(tmp_path)
    x, y = tmp_path / "x.yaml", tmp_path / "y.yaml"
    assert [str(p) for p in result.problems] == [
        f"{y}:2: warning: overlaps with {x}:2 (flow support-*): spend of support-gpt-en counts against both",
        f"{y}:6: warning: overlaps with {x}:2 (flow support-*): spend of support-gpt-en counts against both",
        f"{y}:18: warning: overlaps with {y}:10 (flow search-*, tags env=prod): spend of flows matching "
        "search-* counts against both",
    ]
    assert len(result.budgets) == 8 and result.summary() == "2 files, 8 budgets: 0 errors, 3 warnings"


def test_an_exact_flow_with_a_wildcard_is_an_error_and_with_brackets_a_warning() -> None:
    assert problems(budget_yaml(flow="'support-*'")) == [
        "budgets/support.yaml:2: flow 'support-*' has a wildcard, but flow: is one exact flow name; "
        'to budget every matching flow write match: {flow: "support-*"}'
    ]
    assert problems(budget_yaml(flow="'support-[ab]'")) == [
        "budgets/support.yaml:2: warning: flow 'support-[ab]' is an exact flow name: [...] is no pattern "
        "here (nor in match:, whose only wildcards are * and ?)"
    ]


def test_an_empty_directory_is_a_warning_and_a_missing_one_says_what_to_do(tmp_path: Path) -> None:
    result = load_budget_dir(tmp_path)
    assert [str(p) for p in result.problems] == [f"{tmp_path}: warning: no budget files (*.yaml, *.yml) here"]
    from finops.errors import BudgetFileError

    with pytest.raises(BudgetFileError, match="does not exist: create it, or point FINOPS_BUDGETS_DIR"):
        load_budget_dir(tmp_path / "nope")


def test_the_files_digest_changes_when_a_budget_file_changes(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", budget_yaml())
    before = files_digest(tmp_path)
    assert files_digest(tmp_path) == before
    write(tmp_path, "notes.md", "not a budget file")
    assert files_digest(tmp_path) == before
    path.write_text(budget_yaml(daily_cap_usd="300"))
    os.utime(path, ns=(1, 1))
    changed = files_digest(tmp_path)
    assert changed != before
    write(tmp_path, "b.yml", budget_yaml())
    assert files_digest(tmp_path) != changed
    assert files_digest(tmp_path / "missing") != files_digest(tmp_path)


def test_problem_text_has_file_line_and_severity() -> None:
    assert str(BudgetProblem("b.yaml", 3, "bad")) == "b.yaml:3: bad"
    assert str(BudgetProblem("b.yaml", None, "empty", "warning")) == "b.yaml: warning: empty"


# --------------------------------------------------------------------------- JSON Schema
def _example_documents() -> list[Any]:
    """The example files as an editor sees them: plain YAML (floats are floats in JSON)."""
    return [yaml.safe_load(p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))]


def test_the_json_schema_describes_the_file_shape() -> None:
    schema = budget_json_schema()
    json.dumps(schema)  # plain JSON, nothing left over from Python
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["budgets"] and schema["additionalProperties"] is False
    assert schema["properties"]["budgets"]["items"] == {"$ref": "#/$defs/Budget"}
    budget = schema["$defs"]["Budget"]
    assert budget["additionalProperties"] is False and set(budget["required"]) == {"owner", "daily_cap_usd"}
    assert all(prop.get("description") for prop in budget["properties"].values())
    for document in _example_documents():
        for item in document["budgets"]:
            assert set(item) <= set(budget["properties"]) and set(budget["required"]) <= set(item)
            assert sum(key in item for key in ("flow", "match")) == 1


def test_the_json_schema_is_valid_and_accepts_the_examples() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = budget_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for document in _example_documents():
        validator.validate(document)
    bad = {"budgets": [{"flow": "a", "match": {"flow": "b"}, "owner": "x", "daily_cap_usd": 1, "extra": 1}]}
    assert len(list(validator.iter_errors(bad))) >= 2


# --------------------------------------------------------------------------- the command
runner = CliRunner()
cli = typer.Typer(cls=_FinopsGroup, add_completion=False, pretty_exceptions_enable=False)
cli.add_typer(budgets_app, name="budgets")


def finops(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_validate_the_examples_exits_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINOPS_SLACK_BOT_TOKEN", raising=False)
    code, out, err = finops("budgets", "validate", str(EXAMPLES))
    assert (code, out) == (0, "3 files, 4 budgets: 0 errors, 3 warnings\n")
    # only the owners written as handles: without a bot token nobody can look them up
    no_token = "no Slack bot token to look it up"
    assert [line.split(": warning: ")[0] for line in err.splitlines()] == [
        f"{EXAMPLES / 'platform.yaml'}:4",
        f"{EXAMPLES / 'platform.yaml'}:11",
        f"{EXAMPLES / 'support.yaml'}:4",
    ]
    assert all(f"notifies nobody: {no_token}" in line for line in err.splitlines())


def test_validate_reports_every_broken_file_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "a.yaml", budget_yaml(daily_cap_usd="250$"))
    write(tmp_path, "b.yaml", budget_yaml(flow="b", timezone="Europe/Berln"))
    write(tmp_path, "c.yaml", "")
    monkeypatch.setenv("FINOPS_BUDGETS_DIR", str(tmp_path))
    code, out, err = finops("budgets", "validate")
    assert code == 1
    assert out == "3 files, 0 budgets: 2 errors, 1 warning\n"
    assert err.splitlines() == [
        f"{tmp_path / 'a.yaml'}:4: daily_cap_usd must be a positive number, got '250$'",
        f"{tmp_path / 'b.yaml'}:5: timezone: unknown time zone 'Europe/Berln' (did you mean Europe/Berlin?)",
        f"{tmp_path / 'c.yaml'}: warning: empty file: no budgets here",
    ]


def test_validate_with_only_warnings_exits_0(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", budget_yaml(slack_channel="#costs"))
    code, out, err = finops("budgets", "validate", "--budgets", str(tmp_path))
    assert (code, out) == (0, "1 file, 1 budget: 0 errors, 2 warnings\n") and "warning: slack_channel" in err
    assert "warning: owner '@dana' notifies nobody" in err


def test_validate_a_missing_folder_says_what_to_do(tmp_path: Path) -> None:
    code, out, err = finops("budgets", "validate", str(tmp_path / "nope"))
    assert code == 1 and out == ""
    assert err == (
        f"error: budget file or folder {tmp_path / 'nope'} does not exist: name budget files (*.yaml) "
        "or folders of them\n"
    )
    code, _, err = finops("budgets", "validate", str(tmp_path), "--budgets", str(EXAMPLES))
    assert code == 2 and "give the budget files or folder once" in err


def test_schema_prints_the_json_schema() -> None:
    code, out, _ = finops("budgets", "schema")
    assert code == 0 and json.loads(out) == budget_json_schema()


def test_budgets_readme_example_file_validates() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    block = re.search(r"```yaml\n(# budgets/support.yaml.*?)```", readme, re.S)
    assert block is not None
    budgets, found = parse_budget_text(block.group(1), file="README.md")
    assert found == [] and [b.budget.key for b in budgets] == ["support-gpt-en"]

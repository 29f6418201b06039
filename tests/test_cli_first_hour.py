"""Issue 12, start-up and errors: what a new user meets in the first hour says what is wrong in one
line, on stderr, with the right exit code, and never a traceback or a pydantic dump."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from tests.conftest import make_ledger
from tests.daemon_proc import free_port

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    for name in list(os.environ):
        if name.startswith("FINOPS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FINOPS_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.chdir(tmp_path)
    make_ledger(f"sqlite:///{path}").close()
    return path


def finops(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def finops_process(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command in a child process: a real stderr, COLUMNS as a terminal would set it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS_")}
    return subprocess.run(
        [sys.executable, "-m", "finops", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


# --------------------------------------------------------------------------- 1. no budgets folder
def _wait_for(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"daemon did not answer:\n{log.read_text()}")


def test_run_without_a_budgets_folder_starts_says_so_once_and_reads_it_when_it_appears(
    tmp_path: Path,
) -> None:
    log = tmp_path / "daemon.log"
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS_")}
    env = {**clean, "FINOPS_CYCLE_S": "0.2", "FINOPS_LOG_FORMAT": "json"}
    argv = [sys.executable, "-m", "finops", "run", "--port", str(port), "--db", "f.db", "--init"]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=out)
    try:
        _wait_for(f"http://127.0.0.1:{port}/healthz", proc, log)
        check = f"http://127.0.0.1:{port}/v1/budgets/support/check"
        answer = httpx.get(check).json()
        assert (answer["reason"], answer["known_flow"]) == ("no budget covers this flow", False)
        # 7. the HTTP check says known_flow too, once the flow has usage
        record = {"id": "1", "ts": "2026-11-01T10:00:00Z", "model": "gpt-4o", "flow": "support"}
        assert httpx.post(f"http://127.0.0.1:{port}/v1/usage", json=[record]).json()["stored"] == 1
        deadline = time.monotonic() + 10
        while not httpx.get(check).json()["known_flow"]:  # the set of flows is re-read each second
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1)  # five cycles: the warning is not repeated
        (tmp_path / "budgets").mkdir()
        (tmp_path / "budgets" / "support.yaml").write_text(
            "budgets:\n  - flow: support\n    owner: U0DANA123\n    daily_cap_usd: 10\n"
        )
        deadline = time.monotonic() + 10
        while httpx.get(check).json()["reason"] != "within budget":
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        proc.terminate()
        code = proc.wait(30)
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    warned = [line for line in lines if "no budgets folder" in line["msg"]]
    assert [w["msg"] for w in warned] == [
        "no budgets folder at budgets: running with no budgets; create it (it is read within a cycle) "
        "or set FINOPS_BUDGETS_DIR"
    ]
    assert warned[0]["level"] == "warning"


def test_run_once_without_a_budgets_folder_is_not_an_error(tmp_path: Path) -> None:
    done = finops_process("run", "--once", "--db", "f.db", "--init", cwd=tmp_path, FINOPS_LOG_FORMAT="text")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 budgets: 0 new alerts")
    assert "no budgets folder at budgets: running with no budgets" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            (),
            {"FINOPS_BUDGETS_DIR": "nope"},
            "error: FINOPS_BUDGETS_DIR nope does not exist: create it, or point FINOPS_BUDGETS_DIR "
            "at the folder of budget files\n",
        ),
        (
            ("--budgets", "nope"),
            {},
            "error: --budgets nope does not exist: create it, or pass --budgets the folder of budget files\n",
        ),
        (
            ("--config", "finops.toml"),
            {},
            "error: budgets_dir nope (in finops.toml) does not exist: create it, or set budgets_dir in "
            "finops.toml to the folder of budget files\n",
        ),
    ],
)
def test_a_budgets_folder_named_on_purpose_must_exist(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    (tmp_path / "finops.toml").write_text('budgets_dir = "nope"\n')
    done = finops_process("run", "--once", "--db", "f.db", "--init", *args, cwd=tmp_path, **env)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", message)


# --------------------------------------------------------------------------- 2. ports and settings
def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = finops_process("run", "--port", str(port), "--db", "f.db", "--init", cwd=tmp_path)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if not line.startswith("{")]  # the log lines
    assert errors == [
        f"error: port {port} on 127.0.0.1 is in use; stop the other process or pass --port "
        "(or set FINOPS_PORT)"
    ]
    assert "Traceback" not in done.stderr


def test_a_port_out_of_range_is_a_bad_argument(db: Path) -> None:
    code, out, err = finops("run", "--port", "99999")
    assert code == 2 and out == ""
    assert "Invalid value for '--port'" in err and "65535" in err


def test_every_bad_setting_is_one_line_naming_it_and_what_it_takes(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINOPS_CYCLE_S", "abc")
    monkeypatch.setenv("FINOPS_PORT", "99999")
    monkeypatch.setenv("FINOPS_PROMPT_PREVIEW", "maybe")
    monkeypatch.setenv("FINOPS_LOG_FORMAT", "xml")
    monkeypatch.setenv("FINOPS_DIGEST_TIME", "25:00")
    monkeypatch.setenv("FINOPS_RETENTION_DAYS", "7")
    monkeypatch.setenv("FINOPS_SCHEDULE_TZ", "Mars/Olympus")
    monkeypatch.setenv("FINOPS_SLACK_BOT_TOKEN", "xoxb-secret")  # valid: never shown anyway
    expected = [
        "error: FINOPS_PROMPT_PREVIEW='maybe' is not valid: it takes true or false "
        "(also 1/0, yes/no, on/off)",
        "error: FINOPS_PORT='99999' is not valid: it takes a whole number from 0 to 65535",
        "error: FINOPS_CYCLE_S='abc' is not valid: it takes a number of seconds more than 0 and at most 3600",
        "error: FINOPS_SCHEDULE_TZ='Mars/Olympus' is not valid: unknown time zone 'Mars/Olympus': use an "
        "IANA name such as Europe/Berlin",
        "error: FINOPS_DIGEST_TIME='25:00' is not valid: it takes a local time HH:MM from 00:00 to 23:59",
        "error: FINOPS_RETENTION_DAYS='7' is not valid: it takes a whole number of days at least 35",
        "error: FINOPS_LOG_FORMAT='xml' is not valid: it takes json or text",
    ]
    for command in (("run", "--once"), ("budgets", "validate"), ("db", "current")):
        code, out, err = finops(*command)
        assert (code, out) == (1, ""), command
        assert err.splitlines() == expected, command
    # spend and check read two settings only (the database URL, the budget folder: finops/env.py),
    # so that they start fast; a bad value of a setting they do not use does not stop them.
    code, out, err = finops("spend")
    assert (code, err) == (0, "") and out.startswith("Spend ")


def test_a_secret_setting_is_named_but_never_shown(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_DATABASE_URL", "mysql://root:hunter2@db/finops")
    code, _, err = finops("spend")
    assert code == 1
    assert err == (
        "error: FINOPS_DATABASE_URL must start with sqlite:/// or postgresql+psycopg://, got 'mysql'\n"
    )


# --------------------------------------------------------------------------- 3. stderr is never wrapped
LONG = "budgets/support.yaml:3: unknown key 'dialy_cap_usd' (did you mean daily_cap_usd?)"


def test_errors_and_warnings_are_never_wrapped(tmp_path: Path) -> None:
    (tmp_path / "budgets").mkdir()
    (tmp_path / "budgets" / "support.yaml").write_text(
        "budgets:\n  - flow: support\n    dialy_cap_usd: 10\n    owner: '@dana'\n"
    )
    validate = finops_process("budgets", "validate", cwd=tmp_path, COLUMNS="40")
    assert validate.returncode == 1
    assert LONG in validate.stderr.splitlines()
    assert finops_process("db", "upgrade", "--db", "f.db", cwd=tmp_path).returncode == 0
    check = finops_process("check", "support", "--db", "f.db", cwd=tmp_path, COLUMNS="40")
    assert check.stderr.splitlines()[:3] == [
        "budgets/support.yaml:2: daily_cap_usd is required (USD per local day, e.g. 250)",
        LONG,
        "budgets/support.yaml: broken and never read while valid: its budgets are NOT enforced",
    ]


# --------------------------------------------------------------------------- 6. validate one file
EXAMPLES = Path(__file__).resolve().parent.parent / "budgets"


def test_budgets_validate_takes_one_file_several_files_or_folders() -> None:
    support, search = str(EXAMPLES / "support.yaml"), str(EXAMPLES / "search.yaml")
    # the examples' owners written as @handles warn (no bot token to look them up): exit 0 still
    assert finops("budgets", "validate", support)[:2] == (0, "1 file, 1 budget: 0 errors, 1 warning\n")
    both = finops("budgets", "validate", support, search)[:2]
    assert both == (0, "2 files, 2 budgets: 0 errors, 1 warning\n")
    # a file named again inside its folder is read once
    every = (0, "3 files, 4 budgets: 0 errors, 3 warnings\n")
    assert finops("budgets", "validate", support, str(EXAMPLES))[:2] == every
    assert finops("budgets", "validate", str(EXAMPLES))[:2] == every


def test_budgets_validate_checks_files_named_together_as_one_set(tmp_path: Path) -> None:
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    for path in (one, two):
        path.write_text("budgets:\n  - flow: support\n    owner: U0DANA123\n    daily_cap_usd: 10\n")
    code, out, err = finops("budgets", "validate", str(one))
    assert (code, out, err) == (0, "1 file, 1 budget: no problems\n", "")
    code, out, err = finops("budgets", "validate", str(one), str(two))
    assert (code, out) == (1, "2 files, 1 budget: 1 error, 0 warnings\n")
    assert err == (
        f"{two}:2: budget 'support' is already defined at {one}:2; give one of them a distinct name:\n"
    )


# --------------------------------------------------------------------------- 4. why lines were rejected
BROKEN = [
    '{"id":"a1","ts":"yesterday","model":"gpt-4o","provider":"openai"}',
    '{"id":"a2","ts":"2026-13-01","model":"gpt-4o","provider":"openai"}',
    '{"id":"a3","ts":"2026-11-01T10:00:00Z","provider":"openai"}',
    '{"id":"a4","ts":"2026-11-01T10:00:00Z","model":"gpt-4o","provider":"openai","input_tokens":-5}',
    '{"id":"a5","ts":"2026-11-01T10:00:00Z","model":"gpt-4o","provider":"openai","input_tokens":-5}',
    "not json at all",
    '{"id":"a7","ts":"2026-11-01T10:00:00","model":"gpt-4o","provider":"openai"}',
    '{"ts":"2026-11-01T10:00:00Z","model":"gpt-4o","provider":"openai"}',
    '{"id":"a9","ts":"tomorrow","model":"gpt-4o","provider":"openai"}',
    '{"id":"ok","ts":"2026-11-01T10:00:00Z","model":"gpt-4o","provider":"openai","input_tokens":10}',
    '{"id":"a11","ts":"2026-11-01T10:00:00Z","model":"gpt-4o","provider":"openai","output_tokens":1.5}',
]


def test_ingest_lists_reasons_as_written_with_counts_that_add_up(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(BROKEN) + "\n")
    code, out, err = finops("ingest", str(path))
    assert code == 0, err
    assert out.splitlines()[1:] == [
        "rejected 10, each in the dead letters with its file and line:",
        f"         3  ts is not ISO 8601 (e.g. 2026-11-03T10:15:00Z)  (first: {path}:1)",
        f"         2  input_tokens is negative (-5)  (first: {path}:4)",
        f"         1  missing required field model  (first: {path}:3)",
        "         1  invalid JSON: invalid literal, expected 'null': line 1 column 1 (char 0)  "
        f"(first: {path}:6)",
        f"         1  ts has no UTC offset; add Z or +01:00  (first: {path}:7)",
        "        +2  more (2 other reasons): finops dead-letters",
    ]
    assert out.splitlines()[0].startswith("read 11 from 1 file: stored 1, duplicates 0, rejected 10,")
    counts = [int(line.split()[0].lstrip("+")) for line in out.splitlines()[2:]]
    assert sum(counts) == 10  # rejected = the counts shown + N more
    code, dead, _ = finops("dead-letters", "--format", "json")
    assert json.loads(dead)["total"] == 10


def test_few_reasons_need_no_more_line_and_a_conflict_is_named(db: Path, tmp_path: Path) -> None:
    first = tmp_path / "a.jsonl"
    first.write_text('{"id":"x","ts":"2026-11-01T10:00:00Z","model":"gpt-4o","input_tokens":10}\n')
    assert finops("ingest", str(first))[0] == 0
    again = tmp_path / "b.jsonl"
    again.write_text(
        '{"id":"x","ts":"2026-11-01T10:00:00Z","model":"gpt-4o","input_tokens":11}\n'
        '{"id":"y","ts":"2026-11-01T10:00:00Z","model":"gpt-4o","input_tokens":-1}\n'
    )
    code, out, _ = finops("ingest", str(again))
    assert code == 0
    lines = out.splitlines()[1:]
    assert lines[0] == (
        "rejected 2, each in the dead letters with its file and line; 1 of them is a conflict "
        "(same id, different content):"
    )
    assert sorted(lines[1:]) == [
        f"         1  conflict: id 'x' was already stored with different content; the stored record is "
        f"kept (send a new id for a new call)  (first: {again}:1)",
        f"         1  input_tokens is negative (-1)  (first: {again}:2)",
    ]


def test_reasons_shown_as_written_quote_no_sent_text(db: Path, tmp_path: Path) -> None:
    """Shown unmasked, the reasons still carry no prompt, user or secret (domain.text.shown): the
    same hostile lines as tests/faults/test_07, through the command line."""
    from tests.conftest import usage
    from tests.faults.test_07_nothing_raw_is_kept import EMAIL, PROMPT, SECRETS, TOKEN_LIKE

    lines = [
        json.dumps(usage(1, prompt=PROMPT, user=EMAIL, ts="not a time " + TOKEN_LIKE)),
        '{"id": "4", "prompt": "' + PROMPT + '", "user": "' + EMAIL + '"',  # cut short
        json.dumps(usage(2, model=PROMPT * 20)),
        json.dumps(usage(3, input_tokens=TOKEN_LIKE)),
        json.dumps(usage(5, tags={"team": [EMAIL]})),
        EMAIL,
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = finops("ingest", str(path))
    assert code == 0 and "rejected 6," in out
    for secret in SECRETS:
        assert secret not in out + err, secret


# --------------------------------------------------------------------------- 5. a truncated gzip
def _gzip_of(count: int) -> bytes:
    import gzip

    lines = [
        json.dumps({"id": f"r{i}", "ts": "2026-11-01T10:00:00Z", "model": "gpt-4o", "input_tokens": 10 + i})
        for i in range(count)
    ]
    return gzip.compress(("\n".join(lines) + "\n").encode())


def _records(db: Path) -> int:
    code, out, _ = finops("spend", "--by", "flow", "--format", "json")
    assert code == 0
    return sum(int(row["records"]) for row in json.loads(out)["rows"])


def test_a_truncated_gzip_says_what_was_stored_and_the_rerun_finishes(db: Path, tmp_path: Path) -> None:
    data = _gzip_of(8000)
    cut = tmp_path / "x.jsonl.gz"
    cut.write_bytes(data[: len(data) * 9 // 10])  # a real truncated file: its end marker is missing
    code, out, err = finops("ingest", str(cut), "--batch-size", "3000")
    assert (code, out) == (1, "")
    assert err == (
        f"error: {cut} is truncated after line 7200; the 7,200 records before it were ingested: "
        "7,200 stored, 0 already stored, 0 rejected; fix the file and run the same command again "
        "(nothing is stored twice)\n"
    )
    assert _records(db) == 7200  # the true number: every line read before the cut is stored
    code, _, err = finops("ingest", str(cut))
    assert code == 1 and "0 stored, 7,200 already stored" in err
    cut.write_bytes(data)  # fixed
    code, out, _ = finops("ingest", str(cut))
    assert code == 0 and out.startswith("read 8,000 from 1 file: stored 800, duplicates 7,200,")
    assert _records(db) == 8000


def test_a_broken_file_stops_the_ones_after_it_and_says_so(db: Path, tmp_path: Path) -> None:
    data = bytearray(_gzip_of(100))
    data[-8] ^= 0xFF  # the CRC of the data: the stream is complete but wrong
    (tmp_path / "in").mkdir()
    bad, later = tmp_path / "in" / "a.jsonl.gz", tmp_path / "in" / "b.jsonl"
    bad.write_bytes(bytes(data))
    later.write_text('{"id":"later","ts":"2026-11-01T10:00:00Z","model":"gpt-4o"}\n')
    code, _, err = finops("ingest", str(tmp_path / "in"))
    assert code == 1
    assert err.startswith(f"error: {bad} cannot be read (CRC check failed")
    assert err.endswith(
        "the 100 records before it were ingested: 100 stored, 0 already stored, 0 rejected; the 1 file "
        "after it was not read; fix the file and run the same command again (nothing is stored twice)\n"
    )
    assert _records(db) == 100


# --------------------------------------------------------------------------- 7. check on an unknown flow
def _check(*args: str) -> tuple[int, dict[str, object], str]:
    code, out, err = finops("check", *args)
    return code, json.loads(out), err


def test_check_tells_a_typo_from_a_flow_without_a_budget(db: Path, tmp_path: Path) -> None:
    (tmp_path / "budgets").mkdir()
    for name in ("support.yaml", "search.yaml"):
        (tmp_path / "budgets" / name).write_text((EXAMPLES / name).read_text())
    records = tmp_path / "u.jsonl"
    records.write_text('{"id":"1","ts":"2026-11-01T10:00:00Z","model":"gpt-4o","flow":"code-review"}\n')
    assert finops("ingest", str(records))[0] == 0

    code, doc, err = _check("suport-gpt-en")
    assert (code, doc["decision"], doc["known_flow"]) == (0, "allow", False)
    assert err == "warning: flow 'suport-gpt-en' has no usage and no budget; did you mean 'support-gpt-en'?\n"
    code, doc, err = _check("code-reveiw")  # close to a flow with usage
    assert err == "warning: flow 'code-reveiw' has no usage and no budget; did you mean 'code-review'?\n"
    code, doc, err = _check("zzz")
    assert doc["known_flow"] is False
    assert (
        err
        == "warning: flow 'zzz' has no usage and no budget; check its name (flow names are case-sensitive)\n"
    )

    code, doc, err = _check("code-review")  # usage, no budget
    assert (doc["known_flow"], doc["reason"], err) == (True, "no budget covers this flow", "")
    code, doc, err = _check("support-gpt-en")  # a budget, no usage
    assert (doc["known_flow"], doc["reason"], err) == (True, "within budget", "")

    code, doc, err = _check("search-rerank")  # only a budget that wants tags
    assert doc["known_flow"] is True and err == ""
    assert doc["reason"] == (
        "no budget covers this call: budget 'search-prod' covers this flow when called with tags "
        "env=prod, team=search"
    )
    code, doc, _ = _check("search-rerank", "--tag", "env=prod", "--tag", "team=search")
    assert (doc["reason"], doc["budget"]) == ("within budget", "search-prod")


def test_a_truncated_gzip_of_outcomes_says_what_was_stored(db: Path, tmp_path: Path) -> None:
    import gzip

    lines = [
        json.dumps({"id": f"o{i}", "ts": "2026-11-01T10:00:00Z", "status": "success", "flow": "support"})
        for i in range(3000)
    ]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    cut = tmp_path / "o.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    code, out, err = finops("ingest", "--kind", "outcomes", str(cut))
    assert (code, out) == (1, "")
    read = int(err.split(" after line ")[1].split(";")[0])
    assert 0 < read < 3000
    assert err == (
        f"error: {cut} is truncated after line {read}; the {read:,} outcomes before it were ingested: "
        f"{read:,} stored, 0 already stored, 0 rejected; fix the file and run the same command again "
        "(nothing is stored twice)\n"
    )

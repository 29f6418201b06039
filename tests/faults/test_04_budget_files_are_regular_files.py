"""Issue 10, item 4: only regular files directly in the budget folder are read.

A symlink is refused whatever it points at (inside the folder or out, dangling or not), so
nothing from a file outside the folder is ever read, put in force, logged or posted. FIFOs,
devices, sockets and directories named like budget files are reported with one line each, and
none of them can block a reader: the type is checked with ``lstat`` before anything is opened.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.config import budget_files
from finops.config.budget_files import file_fingerprint, files_digest, load_budget_dir, load_budget_file
from finops.daemon.cycle import Daemon
from finops.daemon.logs import JsonFormatter
from finops.settings import Settings
from tests.slack_fake import FakeSlack
from tests.slack_fake import slack as slack_fixture  # noqa: F401  (the `slack` fixture)

SECRET = "root:x:0:0:SECRET-PASSWD-LINE:/root:/bin/bash"
GOOD = (
    'budgets:\n  - flow: support-gpt-en\n    owner: "U0DANA123"\n    slack_channel: "#support"\n'
    "    daily_cap_usd: 5\n"
)
OUTSIDE = GOOD.replace("support-gpt-en", "outside-flow").replace("daily_cap_usd: 5", "daily_cap_usd: 1")
SYMLINK = "is a symlink; budget files must be regular files in the folder"


def finishes(work: Callable[[], Any]) -> Any:
    """``work()``'s result, failing (not hanging the suite) if it blocks, e.g. on opening a FIFO."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # handed back to the test below
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "blocked: a reader opened something that never answers"
    if "error" in box:
        raise box["error"]
    return box["result"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "budgets"
    d.mkdir()
    (d / "support.yaml").write_text(GOOD)
    return d


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Files outside the budget folder: a valid budget, a secret, and a FIFO nobody writes to."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    (d / "budget.yaml").write_text(OUTSIDE)
    (d / "passwd").write_text(SECRET + "\n")
    os.mkfifo(d / "pipe")
    return d


def problems(folder: Path) -> list[str]:
    return [str(p) for p in finishes(lambda: load_budget_dir(folder)).problems]


# ------------------------------------------------------------------ symlinks


def test_a_symlink_to_a_budget_outside_the_folder_is_refused_and_not_in_force(
    folder: Path, outside: Path
) -> None:
    (folder / "team.yaml").symlink_to(outside / "budget.yaml")
    result = load_budget_dir(folder)
    assert [str(p) for p in result.problems] == [f"{folder / 'team.yaml'}: {SYMLINK}"]
    assert [b.budget.key for b in result.budgets] == ["support-gpt-en"]
    assert result.broken_files == {str(folder / "team.yaml")}  # its last good version stays in force


def test_every_symlink_is_refused_inside_the_folder_dangling_or_to_a_fifo(
    folder: Path, outside: Path
) -> None:
    (folder / "a-inside.yaml").symlink_to(folder / "support.yaml")
    (folder / "b-relative.yml").symlink_to("support.yaml")
    (folder / "c-dangling.yaml").symlink_to(outside / "missing.yaml")
    (folder / "d-pipe.yaml").symlink_to(outside / "pipe")  # following it would block for ever
    (folder / "e-passwd.yaml").symlink_to(outside / "passwd")
    names = ["a-inside.yaml", "b-relative.yml", "c-dangling.yaml", "d-pipe.yaml", "e-passwd.yaml"]
    assert problems(folder) == [f"{folder / n}: {SYMLINK}" for n in names]


def test_nothing_of_a_linked_file_reaches_messages_slack_or_logs(
    db_url: str, folder: Path, outside: Path, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    (folder / "passwd.yaml").symlink_to(outside / "passwd")
    result = CliRunner().invoke(app, ["budgets", "validate", str(folder)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"{folder / 'passwd.yaml'}: {SYMLINK}"]
    assert SECRET not in result.output
    settings = Settings(
        database_url=db_url,
        budgets_dir=folder,
        slack_bot_token="xoxb-1111-2222-fakeTokenValue0123456789",
        slack_base_url=slack.base_url,
        slack_default_channel="#finops",
    )
    caplog.set_level(logging.DEBUG)
    daemon = Daemon(settings, create=True)
    try:
        finishes(daemon.cycle)
        finishes(daemon.cycle)
    finally:
        daemon.shutdown()
    notices = [p for p in slack.posts("#finops") if "budget file" in (p.text or "")]  # not the digest
    assert len(notices) == 1 and SYMLINK in (notices[0].text or "")
    posted = json.dumps([p.body for p in slack.posts()])
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "SECRET-PASSWD-LINE" not in posted and "SECRET-PASSWD-LINE" not in logged
    assert SYMLINK in logged


def test_a_file_replaced_by_a_symlink_keeps_its_last_good_version_not_the_linked_one(
    db_url: str, folder: Path, outside: Path
) -> None:
    daemon = Daemon(Settings(database_url=db_url, budgets_dir=folder), create=True)
    try:
        daemon.cycle()
        assert [b.key for b in daemon.budgets.budgets] == ["support-gpt-en"]
        (folder / "support.yaml").unlink()
        (folder / "support.yaml").symlink_to(outside / "budget.yaml")
        finishes(daemon.cycle)
        assert [(b.key, b.daily_cap_usd) for b in daemon.budgets.budgets] == [("support-gpt-en", 5)]
        assert daemon.budgets.current.errors_by_file == {
            str(folder / "support.yaml"): (f"{folder / 'support.yaml'}: {SYMLINK}",)
        }
    finally:
        daemon.shutdown()


# ------------------------------------------------------------------ other kinds of file


@pytest.fixture
def in_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Work inside the folder: a Unix socket's path must stay short."""
    monkeypatch.chdir(folder)
    yield folder


def test_fifos_sockets_directories_and_devices_are_each_reported_and_never_block(in_folder: Path) -> None:
    folder = in_folder
    os.mkfifo("a-pipe.yaml")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("b-socket.yaml")
    (folder / "c-dir.yaml").mkdir()
    expected = [
        f"{folder / 'a-pipe.yaml'}: is a FIFO, not a regular file",
        f"{folder / 'b-socket.yaml'}: is a socket, not a regular file",
        f"{folder / 'c-dir.yaml'}: is a directory, not a regular file",
    ]
    try:
        os.mknod("d-device.yaml", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
        expected.append(f"{folder / 'd-device.yaml'}: is a device file, not a regular file")
    except PermissionError:
        pass  # not root: the other kinds still show the rule
    try:
        assert problems(folder) == expected
        result = load_budget_dir(folder)
        assert [b.budget.key for b in result.budgets] == ["support-gpt-en"]
        assert result.summary() == f"{len(expected) + 1} files, 1 budget: {len(expected)} errors, 0 warnings"
        cli = finishes(lambda: CliRunner().invoke(app, ["budgets", "validate", str(folder)]))
        assert cli.exit_code == 1 and cli.stderr.splitlines() == expected
    finally:
        sock.close()


def test_hidden_entries_and_other_names_are_still_not_budget_files(folder: Path) -> None:
    os.mkfifo(folder / ".editor-pipe.yaml")
    (folder / "archive").mkdir()
    (folder / "notes.txt").symlink_to("/etc/hostname")
    assert problems(folder) == []


def test_a_fifo_swapped_in_after_the_type_check_is_still_not_opened_for_ever(
    folder: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second guard: even when ``lstat`` saw a regular file (a race), the open neither follows
    a link nor waits on a FIFO (O_NOFOLLOW | O_NONBLOCK), and the opened file is checked again."""
    real_lstat = os.lstat
    regular = real_lstat(folder / "support.yaml")
    (folder / "pipe.yaml").symlink_to(outside / "pipe")
    os.mkfifo(folder / "fifo.yaml")

    def racing_lstat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(path).name in ("pipe.yaml", "fifo.yaml"):
            return regular  # what it was a moment before the swap
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(budget_files.os, "lstat", racing_lstat)
    link = finishes(lambda: load_budget_file(folder / "pipe.yaml"))
    fifo = finishes(lambda: load_budget_file(folder / "fifo.yaml"))
    assert [str(p) for p in link[1]] == [f"{folder / 'pipe.yaml'}: {SYMLINK}"]
    assert [str(p) for p in fifo[1]] == [f"{folder / 'fifo.yaml'}: is a FIFO, not a regular file"]


# ------------------------------------------------------------------ the digest and the notice key


def test_the_digest_does_not_follow_links_and_sees_a_file_become_a_link(folder: Path, outside: Path) -> None:
    before = finishes(lambda: files_digest(folder))
    (folder / "team.yaml").symlink_to(outside / "budget.yaml")
    linked = files_digest(folder)
    assert linked != before
    (outside / "budget.yaml").write_text(OUTSIDE + "# edited outside the folder\n")
    assert files_digest(folder) == linked  # the target is never looked at
    os.mkfifo(folder / "pipe.yaml")
    assert finishes(lambda: files_digest(folder)) != linked


def test_the_notice_fingerprint_reads_nothing_through_a_link_or_from_a_fifo(
    folder: Path, outside: Path
) -> None:
    (folder / "a.yaml").symlink_to(outside / "passwd")
    (folder / "b.yaml").symlink_to(outside / "budget.yaml")
    os.mkfifo(folder / "c.yaml")
    a, b = file_fingerprint(folder / "a.yaml"), file_fingerprint(folder / "b.yaml")
    assert a == b  # both are "a symlink": nothing of either target went into them
    assert finishes(lambda: file_fingerprint(folder / "c.yaml")) != a
    assert file_fingerprint(folder / "support.yaml") != file_fingerprint(outside / "budget.yaml")

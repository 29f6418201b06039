"""The LiteLLM guard inside a real LiteLLM proxy server (``litellm --config``, a subprocess), in
front of a real finops daemon: requests go over HTTP to the proxy, whose ``config.yaml`` registers
the guard as docs/litellm.md says and answers with ``mock_response`` models (no network).

Needs LiteLLM's proxy extra (``pip install -e '.[litellm-proxy]'``); without it the test is
skipped and says which import failed. In the dev environment that extra downgrades rich below what
import-linter needs: ``pip install 'rich>=14.2'`` afterwards (the proxy runs with it)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from finops.domain.money import format_usd
from tests.daemon_proc import TOKEN, DaemonProcess, free_port

MODEL = "gpt-4o-2024-08-06"  # $2.50 per million input tokens, $10 per million output tokens
FLOW = "support-bot"
CAP_USD = "0.05"
ZERO = format_usd(0)
MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]
#: The mock's usage (LiteLLM's DEFAULT_MOCK_RESPONSE_*_TOKEN_COUNT, set in the proxy's environment).
MOCK_INPUT, MOCK_OUTPUT = 10, 1000
#: A string mock: each call gets a new response id, so each usage record is a new record. (A dict
#: mock in config.yaml is built into one response once: every call would answer the same id.)
CONFIG = f"""\
model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_key: sk-never-sent
      mock_response: "On its way."
  - model_name: broken
    litellm_params:
      model: openai/{MODEL}
      api_key: sk-never-sent
      mock_response: litellm.InternalServerError
litellm_settings:
  callbacks: finops.integrations.litellm.guard
"""


def _proxy_import_problem() -> str | None:
    """The line that says why ``litellm.proxy.proxy_server`` cannot be imported, else None
    (checked in a subprocess: importing the proxy in the test process would set it up here)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import litellm.proxy.proxy_server"],
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if probe.returncode == 0:
        return None
    lines = [line for line in probe.stderr.splitlines() if "Error" in line] or probe.stderr.splitlines()
    return lines[-1] if lines else f"exit {probe.returncode}"


class ProxyProcess:
    """``python -m litellm.proxy.proxy_cli --config config.yaml`` on a free port; ``start()`` waits
    until its liveness route answers."""

    def __init__(self, tmp: Path, config: str, **env: str) -> None:
        self.tmp = tmp
        (tmp / "config.yaml").write_text(config)
        self.key = f"sk-{secrets.token_hex(32)}"  # the proxy refuses to start without a master key
        self.env = {
            **os.environ,
            "LITELLM_MASTER_KEY": self.key,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            **env,
        }
        self.log = tmp / "proxy.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120) -> ProxyProcess:
        self.port = free_port()
        command = [sys.executable, "-m", "litellm.proxy.proxy_cli", "--config", "config.yaml"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*command, "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=out,
                cwd=self.tmp,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the LiteLLM proxy exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.base + "/health/liveliness", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"the LiteLLM proxy did not answer in {timeout_s:g} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def chat(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            self.base + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=60,
        )


@pytest.fixture(scope="module")
def litellm() -> Any:
    """LiteLLM, imported when this module's test runs, not when pytest collects the suite (every
    xdist worker collects every module, and the import costs a second of CPU)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM would fetch its price map
    return pytest.importorskip("litellm", reason="LiteLLM is not installed: pip install -e '.[dev]'")


@pytest.fixture(scope="module")
def proxy_extra(litellm: Any) -> None:
    problem = _proxy_import_problem()
    if problem is not None:
        pytest.skip(
            f"LiteLLM's proxy cannot be imported ({problem}): "
            "pip install -e '.[litellm-proxy]' to run the guard in a real proxy"
        )


@pytest.fixture
def stack(proxy_extra: None, tmp_path: Path, sqlite_url: str) -> Iterator[tuple[DaemonProcess, ProxyProcess]]:
    """A finops daemon with a blocking $0.05 cap on the flow, and the proxy guarded by it."""
    budgets = tmp_path / "budgets"
    budgets.mkdir()
    (budgets / "support.yaml").write_text(
        f'budgets:\n  - flow: {FLOW}\n    owner: "@dana"\n'
        f"    daily_cap_usd: {CAP_USD}\n    on_breach: block\n"
    )
    daemon = DaemonProcess(tmp_path, sqlite_url, budgets=budgets).start()
    proxy = ProxyProcess(
        tmp_path,
        CONFIG,
        FINOPS_GUARD_URL=daemon.base,
        FINOPS_GUARD_TOKEN=TOKEN,
        FINOPS_GUARD_TTL_S="120",
        FINOPS_GUARD_MODELS=f"broken=openai/{MODEL}",  # the priced model behind the failing group
        DEFAULT_MOCK_RESPONSE_PROMPT_TOKEN_COUNT=str(MOCK_INPUT),
        DEFAULT_MOCK_RESPONSE_COMPLETION_TOKEN_COUNT=str(MOCK_OUTPUT),
    )
    try:
        yield daemon, proxy.start()
    finally:
        proxy.stop()
        daemon.stop()


def ledger_when_settled(daemon: DaemonProcess, spend_usd: str) -> dict[str, Any]:
    """The flow's check once the holds have become spend (the proxy settles after it answers),
    or after 20 s."""
    deadline = time.monotonic() + 20
    with daemon.client() as client:
        while True:
            doc: dict[str, Any] = client.get(f"/v1/budgets/{FLOW}/check").json()
            if (doc["spend_usd"], doc["held_usd"]) == (spend_usd, ZERO) or time.monotonic() > deadline:
                return doc
            time.sleep(0.1)


def test_a_real_litellm_proxy_refuses_calls_past_a_blocking_cap(
    stack: tuple[DaemonProcess, ProxyProcess], litellm: Any
) -> None:
    daemon, proxy = stack
    counted = litellm.token_counter(model=MODEL, messages=MESSAGES)
    held_per_call = counted * 2_500 + MOCK_OUTPUT * 10_000  # nano-dollars: what the guard holds
    per_call = MOCK_INPUT * 2_500 + MOCK_OUTPUT * 10_000  # what the mock's usage costs
    assert per_call <= held_per_call
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": MOCK_OUTPUT}

    # A call the provider fails: its hold becomes its failed usage ($0), nothing stays held.
    failed = proxy.chat({**body, "model": "broken", "tags": [f"flow:{FLOW}"]})
    assert failed.status_code == 500, failed.text
    assert (ledger_when_settled(daemon, ZERO)["held_usd"]) == ZERO, proxy.tail()

    # Twelve at once. $0.05 holds four calls (held or settled, each at least $0.010025); a fifth
    # would pass the cap whatever the order, so exactly four are answered.
    with ThreadPoolExecutor(12) as pool:
        answers = list(
            pool.map(lambda _: proxy.chat({**body, "metadata": {"tags": [f"flow:{FLOW}"]}}), range(12))
        )
    ok = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert len(ok) == 4, [a.text for a in answers]
    assert {a.json()["usage"]["completion_tokens"] for a in ok} == {MOCK_OUTPUT}
    assert {a.status_code for a in refused} == {422}, [a.text for a in refused]  # LiteLLM's budget status
    error = refused[0].json()["error"]
    assert error["message"].startswith(f"finops: budget {FLOW} would be exceeded"), error
    assert f"cap ${format_usd(50_000_000)}" in error["message"], error
    assert (error["type"], error["code"]) == ("invalid_request_error", "422"), error

    doc = ledger_when_settled(daemon, format_usd(4 * per_call))
    assert (doc["spend_usd"], doc["held_usd"]) == (format_usd(4 * per_call), ZERO), proxy.tail()
    assert 4 * per_call <= 50_000_000  # spend within the cap, nothing held
    with daemon.client() as client:
        spend = client.get("/v1/spend", params={"by": "flow,status", "today": "1"}).json()
    rows = {(r["flow"], r["status"]): (r["records"], r["cost_usd"]) for r in spend["rows"]}
    # the failed call is recorded on the flow (its top-level tags) at $0; no call is unassigned
    assert rows == {(FLOW, "ok"): (4, format_usd(4 * per_call)), (FLOW, "error"): (1, ZERO)}, rows
    log = proxy.log.read_text(errors="replace")
    assert "was not recorded" not in log and "Error in async_post_call_failure_hook" not in log, proxy.tail()

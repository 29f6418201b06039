"""The real daemon (``python -m finops run``) as a subprocess on a free port, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

TOKEN = "tok-app-0123456789abcdef"
OTHER_TOKEN = "tok-gw-fedcba9876543210"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaemonProcess:
    """``start()`` waits until /healthz answers; ``stop()`` sends a signal and waits for the exit."""

    def __init__(self, tmp: Path, db_url: str, *, budgets: Path | None = None, **env: str) -> None:
        self.tmp = tmp
        self.db_url = db_url
        self.budgets = budgets or tmp / "budgets"
        self.budgets.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "FINOPS_INGEST_TOKENS": f"app={TOKEN},gateway={OTHER_TOKEN}",
            "FINOPS_CYCLE_S": "0.5",
            "FINOPS_LOG_FORMAT": "json",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = tmp / "daemon.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30) -> DaemonProcess:
        self.port = free_port()
        with self.log.open("ab") as out:  # the child keeps its own handle
            self.proc = self._spawn(out)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"daemon did not answer /healthz:\n{self.log.read_text()}")

    def _spawn(self, out: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "finops",
                "run",
                "--port",
                str(self.port),
                "--db",
                self.db_url,
                "--budgets",
                str(self.budgets),
                "--init",
            ],
            env=self.env,
            stdout=out,
            stderr=out,
            cwd=self.tmp,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout_s)

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                lines.append({"msg": line})
        return lines

    def client(self, token: str = TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=60)

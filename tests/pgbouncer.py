"""A throwaway PgBouncer in transaction pooling mode in front of a PostgreSQL server.

Debian's ``pgbouncer`` binary (1.18: no prepared statements in transaction mode), started on a free
port with its own config, log and pid file in a temp dir, and stopped by its process handle. Every
database on the server is reachable through it (a ``*`` wildcard entry), so the tests' per-test
databases work. Used by tests/conftest.py (``FINOPS_TEST_PGBOUNCER=1``) and bench/pg_replicas.py.

    python -m tests.pgbouncer [--server-port 5432]   # runs until Ctrl-C, prints the port
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from sqlalchemy.engine import make_url

__all__ = ["PgBouncer", "pgbouncer_binary"]


def pgbouncer_binary() -> str | None:
    """The pgbouncer executable (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    return "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").is_file() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgBouncer:
    """One pgbouncer process; ``url(server_url)`` is the same database reached through it.

    PgBouncer refuses to run as root: as root it is started with ``-u postgres`` and its temp dir
    is handed to that user.
    """

    def __init__(
        self,
        server_host: str = "127.0.0.1",
        server_port: int = 5432,
        *,
        pool_mode: str = "transaction",
        pool_size: int = 10,
        max_client_conn: int = 1000,
    ) -> None:
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed: apt-get install -y pgbouncer")
        self.binary = binary
        self.server_host = server_host
        self.server_port = server_port
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.port = 0
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_config(self, folder: Path, user: str) -> Path:
        (folder / "users.txt").write_text(f'"{user}" ""\n')
        config = folder / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={self.server_host} port={self.server_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {folder / 'users.txt'}\n"
            f"pool_mode = {self.pool_mode}\n"
            f"default_pool_size = {self.pool_size}\n"
            f"max_client_conn = {self.max_client_conn}\n"
            # a dropped per-test database leaves no pool behind for long
            "autodb_idle_timeout = 30\n"
            "server_login_retry = 1\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {folder / 'pgbouncer.log'}\n"
            f"pidfile = {folder / 'pgbouncer.pid'}\n"
        )
        return config

    def start(self) -> PgBouncer:
        self.dir = Path(tempfile.mkdtemp(prefix="finops-pgbouncer-"))
        command = [self.binary]
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            command += ["-u", "postgres"]
        for _ in range(5):  # another process may take the free port before pgbouncer binds it
            self.port = _free_port()
            config = self._write_config(self.dir, "postgres")
            self.proc = subprocess.Popen(
                [*command, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if self._wait_listening():
                return self
            self.proc.kill()
            self.proc.wait(10)
        raise RuntimeError(f"pgbouncer did not start: {self.log()[-2000:]}")

    def _wait_listening(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def log(self) -> str:
        path = self.dir / "pgbouncer.log" if self.dir else None
        return path.read_text(errors="replace") if path and path.is_file() else ""

    def url(self, server_url: str) -> str:
        """``server_url`` (same user, same database) through this pgbouncer."""
        return (
            make_url(server_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # 1.18: SIGTERM is the immediate shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server-host", default="127.0.0.1")
    ap.add_argument("--server-port", type=int, default=5432)
    ap.add_argument("--pool-size", type=int, default=10)
    args = ap.parse_args()
    with PgBouncer(args.server_host, args.server_port, pool_size=args.pool_size) as bouncer:
        print(f"pgbouncer (transaction pooling) on 127.0.0.1:{bouncer.port}; Ctrl-C stops it", flush=True)
        try:
            while bouncer.proc is not None and bouncer.proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

"""CLI start-up: `finops spend`, `finops check` and `finops --version` against bare imports.

The baseline is what any typer + SQLAlchemy program pays before its first line runs:
`python -c "import sqlalchemy.engine, typer"`. Each finops command is run as a
subprocess on a small demo-like database (budgets folder included), interleaved with the
baseline so that a busy machine slows both alike; the figure is the median of N runs and
the ratio is finops over the baseline (target: ≤ 1.3 each).

    python bench/cli.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

TARGET = 1.3


def _prepare(folder: Path) -> dict[str, str]:
    """A database with a few thousand records and one budget, made by finops itself."""
    env = {**os.environ, "FINOPS_DATABASE_URL": f"sqlite:///{folder / 'finops.db'}"}
    # Python as users run it: compiled modules cached (.pyc) after the first run. With
    # PYTHONDONTWRITEBYTECODE set, every run would recompile finops's modules from source
    # (in an editable install they have no .pyc), while the baseline's are precompiled.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    budgets = folder / "budgets"
    budgets.mkdir()
    (budgets / "support.yaml").write_text(
        "budgets:\n  - flow: support\n    owner: U04SUPPORT1\n    daily_cap_usd: 50\n"
        "    on_breach: block\n    timezone: Europe/Berlin\n"
    )
    now = datetime.now(UTC).replace(microsecond=0)
    lines = [
        json.dumps(
            {
                "id": f"bench-cli-{i}",
                "ts": now.isoformat().replace("+00:00", "Z"),
                "provider": "openai",
                "model": "gpt-4o-mini",
                "flow": ("support", "search", "summarize")[i % 3],
                "input_tokens": 1000 + i,
                "output_tokens": 100,
            }
        )
        for i in range(3000)
    ]
    data = folder / "usage.jsonl"
    data.write_text("\n".join(lines) + "\n")
    finops = [sys.executable, "-m", "finops"]
    subprocess.run([*finops, "db", "upgrade"], env=env, cwd=folder, check=True, capture_output=True)
    subprocess.run([*finops, "ingest", str(data)], env=env, cwd=folder, check=True, capture_output=True)
    return env


def _wall(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
    took = time.perf_counter() - started
    if done.returncode not in (0, 4):  # 4: check denied, still a full answer
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("finops"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = _prepare(folder)
        cases = {
            "baseline: import sqlalchemy.engine, typer": [
                sys.executable,
                "-c",
                "import sqlalchemy.engine, typer",
            ],
            "finops --version": [exe, "--version"],
            "finops spend": [exe, "spend"],
            "finops check support": [exe, "check", "support"],
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for argv in cases.values():  # warm the page cache and .pyc files once
            _wall(argv, env, folder)
        for _ in range(args.runs):
            for name, argv in cases.items():
                times[name].append(_wall(argv, env, folder))
    base = statistics.median(times["baseline: import sqlalchemy.engine, typer"])
    print(f"CLI start-up, median of {args.runs} runs (each command a fresh process)")
    print(f"{'command':<44} {'median':>9} {'p90':>9} {'ratio':>7}")
    worst = 0.0
    for name, samples in times.items():
        med = statistics.median(samples)
        p90 = sorted(samples)[max(0, round(0.9 * len(samples)) - 1)]
        ratio = med / base
        if not name.startswith("baseline"):
            worst = max(worst, ratio)
        print(f"{name:<44} {med * 1000:>7.0f}ms {p90 * 1000:>7.0f}ms {ratio:>6.2f}x")
    verdict = "met" if worst <= TARGET else "NOT met"
    print(f"target ≤ {TARGET}x the baseline for each command: {verdict} (worst {worst:.2f}x)")


if __name__ == "__main__":
    main()

"""``finops run``: the long-running process. Its cycle (budgets, alerts, schedules, polls), the
parser process, logs, and its HTTP API in :mod:`finops.daemon.http`. It only calls use cases and
presents their results."""

"""Operator-written files (budgets): read safely, every problem reported as ``file:line: what is wrong``."""

"""Slack delivery (budgets issue)."""

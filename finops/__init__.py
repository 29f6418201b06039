"""finops: an exact ledger of LLM usage and cost, per-flow budgets, audits and alerts.

Money unit, stated once: costs are USD, exact ``Decimal`` in code and integer
**nano-dollars** (1 USD = 1_000_000_000) in storage. A record's cost is
computed exactly, then rounded half-to-even to the nano-dollar once; every sum
is a sum of integers, so totals always equal the sum of their parts.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

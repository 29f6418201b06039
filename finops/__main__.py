"""``python -m finops`` runs the CLI."""

from finops.cli import main

main()

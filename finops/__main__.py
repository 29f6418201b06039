"""``python -m finops`` runs the CLI."""

from finops.cli.main import main

main()

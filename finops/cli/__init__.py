"""The ``finops`` command (typer): parse, call a use case, print. One module per command group;
:mod:`finops.cli.main` holds the root command and turns every finops error into an exit code."""

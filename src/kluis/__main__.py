"""``python -m kluis`` is the ``kluis`` command."""

from kluis.cli.main import app

app()

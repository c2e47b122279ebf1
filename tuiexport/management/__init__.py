"""Export definitions, product selections and runs: the state behind every front end."""

from tuiexport.management import definitions, history, selections  # noqa: F401

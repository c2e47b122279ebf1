"""Export definitions, product selections and runs: the state behind every front end."""

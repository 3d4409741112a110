"""The ``glider-relay`` console script and its sub-commands."""

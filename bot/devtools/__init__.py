"""``glider-relay dev`` and ``demo``: everything in one process, for trying it out."""

"""``glider-relay worker``: the executor, poller, notifier and upkeep."""

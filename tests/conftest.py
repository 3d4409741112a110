"""Shared fixtures live in tests/fixtures/, one module per outside party."""

pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.slack",
    "tests.fixtures.web",
    "tests.fixtures.glider",
    "tests.fixtures.cluster",
    "tests.fixtures.webhooks",
    "tests.fixtures.chaos",
    "tests.fixtures.redis_config",
]

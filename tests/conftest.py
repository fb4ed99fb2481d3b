pytest_plugins = [
    "tests.plugins.stack",
    "tests.plugins.contracts",
    "tests.plugins.gateway",
]

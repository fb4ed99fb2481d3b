pytest_plugins = [
    "tests.plugins.stack",
    "tests.plugins.contracts",
    "tests.plugins.gateway",
    "tests.plugins.worker",
]

pytest_plugins = ["tests.plugins.stack", "tests.plugins.contracts"]

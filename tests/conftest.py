pytest_plugins = ["tests.plugins.stack"]

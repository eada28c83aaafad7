def pytest_report_header(config):
    return f"forensics-plugin-loaded: {config.pluginmanager.has_plugin('forensics')}"

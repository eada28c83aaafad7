# Scenario suites are data for the integration tests, not tests of this project.
collect_ignore_glob = ["*"]

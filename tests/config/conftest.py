"""Fixtures for the run-definition tests, shared with tests/cli (defined in cli_support.py)."""

from cli.cli_support import base_config, cli, data_dir, repo_root, wide_console, write_yaml  # noqa: F401

"""The CLI fixtures of tests/cli, for the ``algo halt`` and ``risk:`` config tests."""

from cli.cli_support import base_config, cli, data_dir, write_yaml  # noqa: F401

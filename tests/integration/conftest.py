"""A data dir for the real `pinelab` command: a copy of a database the command migrated once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_support import data_dir_from, migrated_template


@pytest.fixture(scope="session")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate a SQLite database with the real command once per session."""
    return migrated_template(tmp_path_factory.mktemp("cli-template"))


@pytest.fixture
def cli_data_dir(tmp_path: Path, cli_template: Path) -> Path:
    """The test's own data dir, holding a copy of the migrated database."""
    return data_dir_from(cli_template, tmp_path)

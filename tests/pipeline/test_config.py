"""The TOML config file of ``generate``: every error names the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_strawberry.errors import ConfigurationError
from open_strawberry.pipeline import load_config


@pytest.mark.parametrize(("text", "says"), [
    ('problems = "builtin:mixed:4"\nmax_turn = 3\n', "unknown option `max_turn`"),
    ('max_turns = "three"\n', "Expected `int`, got `str` - at `$.max_turns`"),
    ("max_turns = = 3\n", "not valid TOML"),
])
def test_a_config_error_names_the_file(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ") and says in str(info.value)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"nope\.toml: cannot read the config file"):
        load_config(tmp_path / "nope.toml")


def test_a_good_config_file_gives_its_values(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('problems = "builtin:mixed:4"\nmax_turns = 3\n')
    config = load_config(path)
    assert (config.problems, config.max_turns) == ("builtin:mixed:4", 3)

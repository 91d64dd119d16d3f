"""The help shows the configs' own defaults, though it is built without importing them (the
command modules are cheap to import: see tests/test_startup.py), and an option left out leaves
the config's default in place."""

from __future__ import annotations

import argparse
import re
import typing
from typing import Any

import msgspec
import pytest

from open_strawberry.backends.models import DEFAULT_MOCK_PORT
from open_strawberry.bootstrap import BootstrapConfig
from open_strawberry.cli import bootstrap, build_parser, data, mock_server, options
from open_strawberry.grading.registry import BUILTIN_GRADERS
from open_strawberry.mock import MockConfig
from open_strawberry.mock.config import Thinking
from open_strawberry.pipeline import GenerateConfig
from open_strawberry.problems.builtin import BUILTIN_SETS

SHOWN_DEFAULT = re.compile(r"\(default: ([^,;)]+)")


def command_parser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    command: argparse.ArgumentParser = commands.choices[name]
    return command


def shown(value: Any) -> str:
    """A default as the help writes it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize(("command", "config"), [("generate", GenerateConfig()),
                                                 ("bootstrap", BootstrapConfig(run_dir=""))])
def test_the_defaults_in_the_help_are_the_configs(command: str, config: msgspec.Struct) -> None:
    compared = 0
    for action in command_parser(command)._actions:
        given = SHOWN_DEFAULT.search(action.help or "")
        value = getattr(config, action.dest, None)
        if action.dest == "sft_format":  # the command line's vocabulary (multi-turn) for the config's (messages)
            value = options.export_format(value)
        if given is None or value is None:  # None: the help says what happens instead ("learned", "none")
            continue
        assert given[1] == shown(value), f"{command} {action.option_strings}"
        compared += 1
    assert compared >= 12


def test_an_option_left_out_leaves_the_configs_default() -> None:
    parser = build_parser()
    args = parser.parse_args(["generate", "problems.jsonl"])
    assert [name for name in GenerateConfig.__struct_fields__ if getattr(args, name, None) is not None] == ["problems"]
    args = parser.parse_args(["bootstrap", "--run-dir", "run"])
    assert set(bootstrap._fields()) <= set(BootstrapConfig.__struct_fields__)
    assert [name for name in bootstrap._fields() if getattr(args, name) is not None] == []
    args = parser.parse_args(["mock-server"])
    assert mock_server._config(args) == MockConfig()
    args = parser.parse_args(["mock-server", "--ttft-ms", "250", "--flavor", "ollama"])
    assert mock_server._config(args) == MockConfig(ttft_s=0.25, flavor="ollama")
    args = parser.parse_args(["mock-server", "--thinking", "reasoning_content"])
    assert mock_server._config(args) == MockConfig(thinking="reasoning_content")


def test_the_mock_servers_thinking_modes_are_the_mocks() -> None:
    assert typing.get_args(Thinking) == mock_server.THINKING_MODES
    (thinking,) = [action for action in command_parser("mock-server")._actions if action.dest == "thinking"]
    assert all(mode in (thinking.help or "") for mode in mock_server.THINKING_MODES)


def test_the_mock_port_and_the_problem_sets_are_the_packages() -> None:
    assert mock_server.DEFAULT_PORT == DEFAULT_MOCK_PORT
    assert command_parser("mock-server").get_default("port") == DEFAULT_MOCK_PORT
    assert data.BUILTIN_SETS == BUILTIN_SETS


def every_parser(parser: argparse.ArgumentParser, prog: str = "open-strawberry") -> Any:
    """``(prog, parser)`` for the program and each command and subcommand, depth first."""
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from every_parser(child, f"{prog} {name}")


def test_every_option_and_argument_has_help() -> None:
    missing = [f"{prog} {action.option_strings or action.dest}" for prog, parser in every_parser(build_parser())
               for action in parser._actions
               if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help]
    assert missing == []


def test_the_grader_help_names_every_grader() -> None:
    (grader,) = [action for action in command_parser("generate")._actions if action.dest == "grader"]
    assert set(BUILTIN_GRADERS) | {"judge:MODEL", "module:function"} == set(options.GRADERS)
    assert all(name in (grader.help or "") for name in options.GRADERS)

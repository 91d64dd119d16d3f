"""Starting is cheap: ``import open_strawberry``, ``--version`` and ``--help`` (of the program and
of every command) load no SDK, no server, no ML library and not the pipeline.

Each check runs in a fresh interpreter, as what one test imports stays imported for the next.
The timings are in ``benchmarks/startup.py``; these tests state what is (not) imported.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import textwrap
from importlib import import_module
from pathlib import Path

import pytest

import open_strawberry
from open_strawberry.cli import build_parser

SDKS = ("openai", "anthropic", "pydantic", "ray")  # ray: loaded only by generate --ray
# What the commands run: none is needed to print help (the command modules themselves are).
COMMAND_DEPENDENCIES = ("aiohttp", "rich", "structlog", "anyio", "msgspec", "open_strawberry.pipeline",
                        "open_strawberry.mock", "open_strawberry.ui", "open_strawberry.bootstrap",
                        "open_strawberry.training", "open_strawberry.distributed", "open_strawberry.bench",
                        "open_strawberry.traces", "open_strawberry.problems", "open_strawberry.backends",
                        "open_strawberry.cli.progress", "open_strawberry.serving")
ML_LIBRARIES = ("torch", "transformers", "trl", "peft", "datasets", "matplotlib")
COMMAND_MODULES = ("open_strawberry.cli.generate", "open_strawberry.cli.demo", "open_strawberry.cli.data",
                   "open_strawberry.cli.bench", "open_strawberry.cli.mock_server", "open_strawberry.cli.train",
                   "open_strawberry.cli.bootstrap", "open_strawberry.cli.view", "open_strawberry.cli.serve")


def loaded_after(code: str) -> set[str]:
    """The modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent("""
        import json, sys
        sys.__stdout__.write("\\n" + json.dumps(sorted(sys.modules)) + "\\n")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def run_cli(*args: str) -> str:
    return f"""
        import contextlib, io
        from open_strawberry.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main({list(args)!r})
    """


def test_importing_the_package_loads_no_sdk() -> None:
    loaded = loaded_after("import open_strawberry")
    assert not loaded & {*SDKS, *COMMAND_DEPENDENCIES}


@pytest.mark.parametrize("args", [("--version",), ("--help",), ()], ids=["version", "help", "no-command"])
def test_version_and_help_load_no_sdk_and_nothing_a_command_runs(args: tuple[str, ...]) -> None:
    loaded = loaded_after(run_cli(*args))
    assert "open_strawberry.cli.main" in loaded
    assert not loaded & set(SDKS)
    assert not loaded & set(COMMAND_DEPENDENCIES)


def every_help() -> list[list[str]]:
    """The argument lists that print the help of each command and sub-command (``bench compare``,
    ``export sft``, ``model import-gguf`` ...)."""
    found = []
    pending: list[tuple[list[str], argparse.ArgumentParser]] = [([], build_parser())]
    while pending:
        words, parser = pending.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, command in action.choices.items():
                    found.append([*words, name, "--help"])
                    pending.append(([*words, name], command))
    return found


def test_every_commands_help_loads_none_of_what_it_runs() -> None:
    helps = every_help()
    assert ["generate", "--help"] in helps and ["bench", "compare", "--help"] in helps
    code = "\n".join(run_cli(*argv) for argv in helps)
    loaded = loaded_after(code)
    assert set(COMMAND_MODULES) <= loaded
    assert not loaded & {*SDKS, *COMMAND_DEPENDENCIES, *ML_LIBRARIES}


def test_importing_the_sdk_adapters_loads_no_sdk() -> None:
    loaded = loaded_after("from open_strawberry.backends import AnthropicSDKBackend, OpenAISDKBackend")
    assert not loaded & set(SDKS)


def test_an_adapter_maps_its_sdks_errors_without_loading_the_other_sdk() -> None:
    loaded = loaded_after("""
        import anyio, openai
        from open_strawberry import ChatMessage
        from open_strawberry.backends import ChatRequest, OpenAISDKBackend
        from open_strawberry.errors import BackendConnectionError

        async def call() -> None:
            async with openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="x") as client:
                request = ChatRequest(messages=(ChatMessage(role="user", content="hi"),))
                try:
                    await OpenAISDKBackend(client, "m").complete(request)
                except BackendConnectionError:
                    return
            raise AssertionError("no BackendConnectionError")

        anyio.run(call)
    """)
    assert "openai" in loaded
    assert "anthropic" not in loaded


async def test_adapters_wrap_the_callers_clients_with_retries_off() -> None:
    import anthropic
    import openai

    from open_strawberry.backends import AnthropicSDKBackend, Backend, OpenAISDKBackend

    async with openai.AsyncOpenAI(api_key="x") as client, anthropic.AsyncAnthropic(api_key="x") as aclient:
        adapters = [OpenAISDKBackend(client, "gpt-m"), AnthropicSDKBackend(aclient, "claude-m")]
        for adapter in adapters:
            assert isinstance(adapter, Backend)
            assert adapter.client.max_retries == 0
        assert client.max_retries != 0 and aclient.max_retries != 0
        for adapter in adapters:
            await adapter.aclose()


def type_checking_imports(module: str) -> dict[str, tuple[str, ...]]:
    """{module: names} imported under ``if TYPE_CHECKING:`` in ``module``'s source."""
    tree = ast.parse(Path(import_module(module).__file__ or "").read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    return {node.module or "": tuple(alias.name for alias in node.names)
            for node in block.body if isinstance(node, ast.ImportFrom)}


@pytest.mark.parametrize("package", ["open_strawberry", "open_strawberry.backends"])
def test_lazy_exports_are_what_type_checkers_see_and_all_of_all(package: str) -> None:
    module = import_module(package)
    assert type_checking_imports(package) == module._EXPORTS
    assert sorted(name for names in module._EXPORTS.values() for name in names) == sorted(module.__all__)
    assert set(module.__all__) <= set(dir(module))


def test_a_lazy_name_is_the_object_its_module_defines() -> None:
    from open_strawberry.backends.sdk import OpenAISDKBackend
    from open_strawberry.messages import TraceRecord

    assert open_strawberry.TraceRecord is TraceRecord
    assert open_strawberry.backends.OpenAISDKBackend is OpenAISDKBackend
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = open_strawberry.no_such_name  # type: ignore[attr-defined]


def test_importing_a_command_module_loads_none_of_what_it_runs() -> None:
    loaded = loaded_after("\n".join(f"import {module}" for module in COMMAND_MODULES))
    assert not loaded & {*SDKS, *COMMAND_DEPENDENCIES, *ML_LIBRARIES}


def test_the_parser_holds_every_command_and_what_runs_it() -> None:
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    assert list(commands.choices) == ["generate", "demo", "problems", "stats", "export", "select", "bench",
                                      "mock-server", "train", "model", "bootstrap", "view", "serve"]
    for name, command in commands.choices.items():
        assert command.format_help().startswith(f"usage: open-strawberry {name}")
        assert callable(command.get_default("run")), name
    args = parser.parse_args(["problems", "mixed", "--count", "3"])
    assert (args.command, args.name, args.count) == ("problems", "mixed", 3)

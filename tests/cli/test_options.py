"""Options shared by several commands read one way: prices, the flags that config errors name,
``--ui``/``--ray`` before PROBLEMS, the export formats."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from open_strawberry.cli import build_parser, options
from open_strawberry.errors import ConfigurationError
from tests.cli.test_careless_input import run
from tests.traces.records import some_traces


def settled(*argv: str, problems_elsewhere: bool = False) -> argparse.Namespace:
    args = build_parser().parse_args(["generate", *argv])
    options.settle_optional_values(args, problems_elsewhere=problems_elsewhere)
    return args


@pytest.mark.parametrize(("argv", "problems", "ui"), [
    (("p.jsonl", "--ui"), "p.jsonl", 0),
    (("p.jsonl", "--ui", "8780"), "p.jsonl", 8780),
    (("--ui", "8780", "p.jsonl"), "p.jsonl", 8780),
    (("--ui=8780", "p.jsonl"), "p.jsonl", 8780),
    (("--ui", "p.jsonl"), "p.jsonl", 0),
    (("--ui", "builtin:mixed:20"), "builtin:mixed:20", 0),
])
def test_ui_takes_a_port_and_leaves_problems_to_problems(argv: tuple[str, ...], problems: str, ui: int) -> None:
    args = settled(*argv)
    assert (args.problems, args.ui) == (problems, ui)


@pytest.mark.parametrize(("argv", "problems", "ray"), [
    (("p.jsonl", "--ray"), "p.jsonl", ""),
    (("p.jsonl", "--ray", "HEAD:6379"), "p.jsonl", "HEAD:6379"),
    (("--ray", "HEAD:6379", "p.jsonl"), "p.jsonl", "HEAD:6379"),
    (("--ray", "p.jsonl"), "p.jsonl", ""),
    (("--ray=auto", "p.jsonl"), "p.jsonl", "auto"),
])
def test_ray_takes_an_address_and_leaves_problems_to_problems(argv: tuple[str, ...], problems: str, ray: str) -> None:
    args = settled(*argv)
    assert (args.problems, args.ray) == (problems, ray)


def test_with_problems_in_the_config_file_the_value_stays_the_options() -> None:
    args = settled("--ray", "HEAD:6379", problems_elsewhere=True)
    assert (args.problems, args.ray) == (None, "HEAD:6379")


@pytest.mark.parametrize("value", ["88x", "70000", "-1", ""])
def test_a_ui_value_that_is_no_port_is_one_line(value: str) -> None:
    with pytest.raises(ConfigurationError, match=f"--ui takes a port number from 0 to 65535 .*not '{value}'"):
        settled("p.jsonl", f"--ui={value}")


@pytest.mark.parametrize("option", ["--ui", "--ray"])
def test_problems_after_an_optional_value_option_are_read_as_problems(tmp_path: Path, option: str) -> None:
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"id": "1", "prompt": "1+1?", "answer": "2"}\n')
    # refused as the output only because it was read as the problems file: before anything starts
    run("generate", option, problems, "--out", problems, "--no-progress").one_line_error(
        f"--out {problems} is the problems file")
    assert problems.read_text() == '{"id": "1", "prompt": "1+1?", "answer": "2"}\n'


@pytest.mark.parametrize("price", ["nan,1", "1,-1", "1e999,2"])
def test_stats_and_the_monitor_refuse_the_same_prices_with_the_same_message(tmp_path: Path, price: str) -> None:
    traces = some_traces(tmp_path / "t.jsonl")
    message = f"'m={price}': prices are numbers of at least 0 (and finite)"
    run("stats", traces, "--price", f"m={price}").one_line_error(f"--price {message}")
    run("generate", "builtin:letters:2", "--ui", "--ui-price", f"m={price}", "--out", tmp_path / "o.jsonl",
        "--no-progress").one_line_error(f"--ui-price {message}")
    assert not (tmp_path / "o.jsonl").exists()


def test_prices_are_read_per_million_tokens() -> None:
    assert options.parse_prices("--price", ["a:b=3,15", "c=0,0.5"]) == {"a:b": (3.0, 15.0), "c": (0.0, 0.5)}
    assert options.parse_prices("--price", None) == {}


def test_config_errors_name_the_flags_given_on_the_command_line() -> None:
    with pytest.raises(ConfigurationError, match="^--min-pass 0.9 is above --max-pass 0.5$"), \
            options.flag_names({"min_pass", "max_pass"}):
        raise ConfigurationError("min_pass 0.9 is above max_pass 0.5")
    with pytest.raises(ConfigurationError, match="^no problems given$"), options.flag_names({"problems"}):
        raise ConfigurationError("no problems given")
    with pytest.raises(ConfigurationError, match="^c.toml: max_traces must be at least 1$"), \
            options.flag_names({"samples"}, fields={"max_traces", "samples"}, config_file="c.toml"):
        raise ConfigurationError("max_traces must be at least 1")


def test_a_config_file_value_is_named_with_its_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("max_traces = 0\n")
    run("generate", "builtin:letters:2", "--config", config, "--out", tmp_path / "t.jsonl").one_line_error(
        f"{config}: max_traces must be at least 1, got 0")
    run("generate", "builtin:letters:2", "--config", config, "--max-traces", "-2", "--out",
        tmp_path / "t.jsonl").one_line_error("--max-traces must be at least 1, got -2")


def test_bootstrap_errors_name_its_flags(tmp_path: Path) -> None:
    run("bootstrap", "--run-dir", tmp_path / "run", "--min-pass", "0.9", "--max-pass", "0.5").one_line_error(
        "--min-pass 0.9 is above --max-pass 0.5")


@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_both_exports_take_one_format_vocabulary_and_the_earlier_name(tmp_path: Path, kind: str) -> None:
    traces = some_traces(tmp_path / "t.jsonl")
    written = {}
    for spelling in ("multi-turn", "messages", "collapsed"):
        out = tmp_path / f"{kind}-{spelling}.jsonl"
        assert run("export", kind, traces, "--out", out, "--format", spelling).code == 0
        written[spelling] = out.read_text()
    assert written["messages"] == written["multi-turn"] != written["collapsed"]
    assert run("export", kind, traces, "--out", tmp_path / "x.jsonl", "--format", "flat").code == 2
    assert build_parser().parse_args(["export", kind, "t", "--out", "o", "--format", "messages"]).format == "multi-turn"


@pytest.mark.parametrize(("args", "message"), [
    (("--batch-size", "0"), "--batch-size must be at least 1, got 0"),
    (("--learning-rate", "nan"), "--learning-rate must be a number above 0, got nan"),
    (("--lora-r", "-1"), "--lora-r must be at least 1, got -1"),
])
def test_train_errors_name_its_flags(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    data = tmp_path / "sft.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n')
    run("train", "sft", data, "--model", tmp_path, "--out", tmp_path / "out", *args).one_line_error(message)
    assert not (tmp_path / "out").exists()


def test_stats_k_takes_a_comma_list_like_a_bench_load_or_repeats() -> None:
    parse = build_parser().parse_args
    assert parse(["stats", "t", "--k", "1,8"]).k == parse(["stats", "t", "--k", "1", "--k", "8"]).k == [1, 8]
    assert parse(["stats", "t.jsonl", "--k", "1,4", "--k", "8"]).k == [1, 4, 8]
    assert parse(["stats", "t.jsonl"]).k is None
    assert run("stats", "t.jsonl", "--k", "1,x").code == 2

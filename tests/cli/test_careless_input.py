"""Careless input: each mistake is one line naming the option, file or path at fault (exit 1),
a Ctrl-C anywhere is exit 130, and nothing already there is lost."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from open_strawberry.cli import main
from tests.traces.records import record, some_traces, write


class Result(NamedTuple):
    code: int | str | None
    out: str
    err: str

    @property
    def last_line(self) -> str:
        lines = [line for line in self.err.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def one_line_error(self, *fragments: str) -> None:
        """Exit 1, the message as the last line of stderr and the only one of its kind, no traceback."""
        assert self.code == 1, (self.code, self.err)
        assert "Traceback" not in self.out + self.err
        assert self.last_line.startswith("open-strawberry: error: "), self.err
        assert self.err.count("open-strawberry: error:") == 1, self.err
        for fragment in fragments:
            assert fragment in self.last_line, (fragment, self.last_line)


def run(*argv: str | Path) -> Result:
    """Run the command line in this process, capturing what it prints."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: int | str | None = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
    return Result(code, out.getvalue(), err.getvalue())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound (so no one else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    return some_traces(tmp_path / "t.jsonl")


# -- outputs that are inputs -------------------------------------------------------------------


def same_file_spellings(traces: Path) -> dict[str, Path]:
    link = traces.with_name("link.jsonl")
    link.symlink_to(traces.name)
    return {"same": traces, "dotted": Path(os.path.relpath(traces)).parent / "." / traces.name, "symlink": link}


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink"])
@pytest.mark.parametrize("command", [("select", "--min-pass", "0", "--max-pass", "1"), ("export", "sft"),
                                     ("export", "dpo")], ids=["select", "export-sft", "export-dpo"])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(traces: Path, command: tuple[str, ...],
                                                                  spelling: str) -> None:
    before = digest(traces)
    out = same_file_spellings(traces)[spelling]
    argv = (command[0], traces, *command[1:], "--out", out) if command[0] == "select" else (*command, traces,
                                                                                            "--out", out)
    run(*argv).one_line_error(f"--out {out} is the traces file", "name another file")
    assert digest(traces) == before
    assert sorted(p.name for p in traces.parent.iterdir()) == ["link.jsonl", "t.jsonl"]


def test_select_refuses_an_output_that_is_an_exclude_file(traces: Path, tmp_path: Path) -> None:
    earlier = some_traces(tmp_path / "round1.jsonl")
    before = digest(earlier)
    run("select", traces, "--out", earlier, "--exclude", earlier).one_line_error(
        f"--out {earlier} is the --exclude file")
    assert digest(earlier) == before


def test_generate_refuses_an_output_that_is_the_problems_file(tmp_path: Path, closed_port: int) -> None:
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"id": "a", "prompt": "What is 1 + 1?", "answer": "2"}\n')
    run("generate", problems, "--out", problems, "--model", f"mock:m@http://127.0.0.1:{closed_port}/v1",
        "--no-progress").one_line_error(f"--out {problems} is the problems file")
    assert problems.read_text() == '{"id": "a", "prompt": "What is 1 + 1?", "answer": "2"}\n'


# -- outputs that cannot be written -------------------------------------------------------------


def commands_writing_to(out: Path, traces: Path, port: int) -> dict[str, list[str | Path]]:
    model = f"mock:m@http://127.0.0.1:{port}/v1"
    return {
        "generate": ["generate", "builtin:letters:2", "--model", model, "--out", out / "t.jsonl", "--no-progress"],
        "demo": ["demo", "--out-dir", out, "--problems", "1", "--samples", "1", "--no-progress"],
        "problems": ["problems", "letters", "--count", "3", "--out", out / "p.jsonl"],
        "export-sft": ["export", "sft", traces, "--out", out / "sft.jsonl"],
        "export-dpo": ["export", "dpo", traces, "--out", out / "dpo.jsonl"],
        "select": ["select", traces, "--out", out / "next.jsonl"],
        "bench": ["bench", "--mock", "--concurrency", "1", "--requests", "1", "--out", out],
    }


COMMANDS = ["generate", "demo", "problems", "export-sft", "export-dpo", "select", "bench"]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_under_a_regular_file_is_one_line(tmp_path: Path, traces: Path, closed_port: int,
                                                     command: str) -> None:
    """As root, a read-only folder can still be written; a path under a regular file never can."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder\n")
    argv = commands_writing_to(blocker / "out", traces, closed_port)[command]
    run(*argv).one_line_error(str(blocker / "out"), f"{blocker} is not a directory")
    assert blocker.read_text() == "not a folder\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_the_system_refuses_is_one_line_naming_it(traces: Path, closed_port: int, command: str) -> None:
    """/proc takes no new files, even from root: the error comes from the write itself."""
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    out = Path("/proc/self/open-strawberry-test")
    argv = commands_writing_to(out, traces, closed_port)[command]
    if command == "generate":  # it checks the server first: give it the one output it cannot make
        argv = ["generate", "builtin:letters:2", "--model", f"mock:m@http://127.0.0.1:{closed_port}/v1", "--out",
                Path("/proc/self/t.jsonl"), "--no-progress"]
        result = run(*argv)
        result.one_line_error()
        assert "cannot reach" in result.last_line or "/proc/self/t.jsonl" in result.last_line
        return
    run(*argv).one_line_error(str(out))


def test_generate_out_a_directory_is_refused_before_any_call(tmp_path: Path, closed_port: int) -> None:
    run("generate", "builtin:letters:2", "--model", f"mock:m@http://127.0.0.1:{closed_port}/v1", "--out", tmp_path,
        "--no-progress").one_line_error(f"--out {tmp_path} is a directory")


def test_demo_and_bench_refuse_an_out_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    run("demo", "--out-dir", blocker).one_line_error(f"--out-dir {blocker} is not a directory")
    run("bench", "--mock", "--concurrency", "1", "--requests", "1", "--out", blocker).one_line_error(
        f"--out {blocker} is not a directory")
    assert blocker.read_text() == "x"


# -- bad input files ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_export_of_a_damaged_or_missing_file_is_one_line(tmp_path: Path, traces: Path, kind: str) -> None:
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(traces.read_bytes()[:300] + b"\n" + traces.read_bytes())
    out = tmp_path / "out.jsonl"
    run("export", kind, damaged, "--out", out).one_line_error(f"{damaged}:1: not a trace record")
    run("export", kind, tmp_path / "missing.jsonl", "--out", out).one_line_error(
        "missing.jsonl: cannot read the traces file: No such file or directory")
    run("export", kind, tmp_path, "--out", out).one_line_error(f"{tmp_path}: cannot read the traces file")
    assert not out.exists()


def test_select_with_a_missing_exclude_file_is_one_line(tmp_path: Path, traces: Path) -> None:
    run("select", traces, "--out", tmp_path / "next.jsonl", "--exclude", tmp_path / "missing.jsonl").one_line_error(
        "missing.jsonl: cannot read the problems or traces file")
    assert not (tmp_path / "next.jsonl").exists()


# -- bad options --------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (("--k", "-3"), "--k must be at least 1, got -3"),
    (("--k", "0"), "--k must be at least 1, got 0"),
    (("--price", "mock:m=-1,2"), "--price 'mock:m=-1,2': prices are numbers of at least 0"),
    (("--price", "mock:m=nan,2"), "--price 'mock:m=nan,2'"),
    (("--price", "=1,2"), "names no model"),
    (("--price", "mock:m=1"), "write MODEL=INPUT,OUTPUT"),
])
def test_stats_options_are_checked(traces: Path, args: tuple[str, ...], message: str) -> None:
    run("stats", traces, *args).one_line_error(message)


@pytest.mark.parametrize(("args", "message"), [
    (("--requests", "-1"), "--requests must be at least 1, got -1"),
    (("--requests", "0"), "--requests must be at least 1, got 0"),
    (("--concurrency", "2.5"), "--concurrency takes whole numbers (a comma list sweeps), not '2.5'"),
    (("--concurrency", "1,0"), "--concurrency must be at least 1, got 0"),
    (("--concurrency", ","), "--concurrency ',' holds no number"),
    (("--rate", "nan"), "--rate must be a number above 0, got nan"),
    (("--rate", "1", "--concurrency", "1"), "not both"),
    (("--duration", "-5"), "--duration must be a number above 0, got -5.0"),
    (("--duration", "inf"), "--duration must be a number above 0, got inf"),
    (("--warmup", "-1"), "--warmup must be at least 0"),
    (("--input-tokens", "0"), "--input-tokens must be at least 1"),
    (("--output-tokens", "-2"), "--output-tokens must be at least 1"),
    (("--max-concurrency", "0", "--rate", "2"), "--max-concurrency must be at least 1"),
    (("--burstiness", "0", "--rate", "2"), "--burstiness must be a number above 0"),
    (("--percentiles", "150"), "--percentiles lie between 0 and 100, not 150"),
    (("--percentiles", "50,nan"), "--percentiles lie between 0 and 100"),
    (("--percentiles", "fifty"), "--percentiles takes numbers"),
    (("--slo", "ttft=-1"), "--slo takes pairs like ttft=500"),
    (("--slo", "ttft"), "--slo takes pairs like ttft=500"),
    (("--slo", "latency=5"), "--slo knows ttft, tpot and e2e, not latency"),
    (("--mock-ttft-ms", "-1"), "--mock-ttft-ms must be a number of at least 0"),
    (("--mock-tokens-per-s", "nan"), "--mock-tokens-per-s must be a number of at least 0"),
    (("--traces", "3"), "--traces applies to the traces workload only"),
])
def test_bench_options_are_checked_before_the_mock_starts(tmp_path: Path, args: tuple[str, ...],
                                                          message: str) -> None:
    defaults = {"--concurrency": "1", "--requests": "2"}
    given = set(args[::2])
    if "--rate" in given:
        defaults.pop("--concurrency")
    base = [item for option, value in defaults.items() if option not in given for item in (option, value)]
    run("bench", "--mock", *base, *args, "--out", tmp_path / "b").one_line_error(message)
    assert not (tmp_path / "b").exists()
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("option", ["--seed", "--slo", "--input-tokens", "--output-tokens", "--warmup",
                                    "--requests", "--duration", "--burstiness", "--max-concurrency"])
def test_the_traces_workload_refuses_the_options_it_would_ignore(tmp_path: Path, option: str) -> None:
    value = {"--slo": "ttft=500", "--duration": "5", "--burstiness": "0.5"}.get(option, "3")
    run("bench", "--mock", "--workload", "traces", "--concurrency", "2", option, value, "--out",
        tmp_path / "b").one_line_error(f"{option} applies to the single-turn workload only, not to --workload traces")


def test_bench_compare_refuses_a_json_list_or_an_object_of_another_kind(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text('{"name": "not a benchmark"}')
    run("bench", "compare", tmp_path / "list.json", tmp_path / "list.json").one_line_error(
        "list.json: not a summary.json of bench (a JSON list, not an object)")
    run("bench", "compare", tmp_path / "other.json", tmp_path / "other.json").one_line_error(
        "other.json: not a summary.json of bench (none of")


def test_bench_compare_shows_figures_of_odd_shapes_as_they_are(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"request_throughput": 1e-300, "goodput": "[/bold]", "failed": true, '
                                     '"ttft_ms": {"mean": [1], "p50": 99999999999999999999999}}')
    (tmp_path / "b.json").write_text('{"request_throughput": 1e300, "goodput": 2, "ttft_ms": 5}')
    result = run("bench", "compare", tmp_path / "a.json", tmp_path / "b.json")
    assert result.code == 0, result.err
    assert "[/bold]" in result.out


@pytest.mark.parametrize(("args", "message"), [
    (("--port", "70000"), "--port must be at most 65535, got 70000"),
    (("--port", "-1"), "--port must be at least 0, got -1"),
    (("--fault-rate", "2"), "--fault-rate must be a number between 0 and 1, got 2.0"),
    (("--fault-rate", "nan"), "--fault-rate must be a number between 0 and 1, got nan"),
    (("--ttft-ms", "-1"), "--ttft-ms must be a number of at least 0, got -1.0"),
    (("--tokens-per-s", "-5"), "--tokens-per-s must be a number of at least 0"),
    (("--tokens-per-s", "inf"), "--tokens-per-s must be a number of at least 0"),
    (("--tokens-per-chunk", "0"), "--tokens-per-chunk must be at least 1"),
    (("--jitter", "1.5"), "--jitter must be a number between 0 and 1"),
    (("--jitter", "-0.1"), "--jitter must be a number between 0 and 1"),
    (("--accuracy", "2"), "--accuracy must be a number between 0 and 1"),
    (("--confident-after", "-1"), "--confident-after must be at least 0"),
    (("--rpm", "0"), "--rpm must be a number above 0"),
    (("--output-tpm", "-3"), "--output-tpm must be a number above 0"),
    (("--stall-s", "-1"), "--stall-s must be a number of at least 0"),
    (("--host", ""), "--host names no address"),
])
def test_mock_server_options_are_checked_before_it_serves(args: tuple[str, ...], message: str) -> None:
    run("mock-server", *args).one_line_error(message)


@pytest.mark.parametrize(("args", "message"), [
    (("--samples", "0"), "--samples must be at least 1, got 0"),
    (("--max-traces", "-1"), "--max-traces must be at least 1"),
    (("--max-traces", "0"), "--max-traces must be at least 1, got 0"),  # the flag, not the field max_traces
    (("--temperature", "nan"), "--temperature must be between 0 and 2"),
    (("--rpm", "-1"), "--rpm must be a number above 0"),
    (("--timeout-s", "inf"), "--timeout-s must be a number above 0"),
    (("--veto-below", "2"), "--veto-below must be between 0 and 1"),
    (("--model", "openai:x@http://127.0.0.1:notaport/v1"), "the server URL 'http://127.0.0.1:notaport/v1' is not "
                                                           "valid"),
    (("--model", "nope"), "model 'nope' needs a provider prefix"),
    (("--verifier-model", "x:y"), "unknown provider 'x'"),
])
def test_generate_options_are_one_line(tmp_path: Path, closed_port: int, args: tuple[str, ...], message: str) -> None:
    model = ("--model", f"mock:m@http://127.0.0.1:{closed_port}/v1") if "--model" not in args else ()
    run("generate", "builtin:letters:2", *model, *args, "--out", tmp_path / "t.jsonl",
        "--no-progress").one_line_error(message)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_model_url_is_one_line_in_bench_too(tmp_path: Path) -> None:
    run("bench", "--model", "openai:x@http://127.0.0.1:notaport/v1", "--concurrency", "1", "--requests", "1",
        "--out", tmp_path / "b").one_line_error("the server URL 'http://127.0.0.1:notaport/v1' is not valid")


@pytest.mark.parametrize(("args", "message"), [
    (("--problems", "0"), "--problems must be at least 1"),
    (("--samples", "-2"), "--samples must be at least 1"),
    (("--max-traces", "0"), "--max-traces must be at least 1"),
])
def test_demo_options_are_checked_before_it_writes(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    run("demo", "--out-dir", tmp_path / "demo", *args, "--no-progress").one_line_error(message)
    assert not (tmp_path / "demo").exists()


def test_problems_count_is_checked(tmp_path: Path) -> None:
    run("problems", "letters", "--count", "-1", "--out", tmp_path / "p.jsonl").one_line_error(
        "--count must be at least 1, got -1")
    assert not (tmp_path / "p.jsonl").exists()


# -- Ctrl-C -------------------------------------------------------------------------------------


def interrupt(*_args: object, **_kwargs: object) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_during_start_up_is_exit_130_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("open_strawberry.log.configure_logging", interrupt)
    result = run("stats", "whatever.jsonl")
    assert (result.code, result.err) == (130, "open-strawberry: interrupted\n")


def test_ctrl_c_during_the_final_summary_is_exit_130_and_keeps_the_traces(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("open_strawberry.cli.progress.print_summary", interrupt)
    result = run("demo", "--out-dir", tmp_path, "--problems", "2", "--samples", "1", "--no-progress")
    assert (result.code, result.last_line) == (130, "open-strawberry: interrupted")
    assert "Traceback" not in result.err
    for strategy in ("nudge", "verify"):
        assert len((tmp_path / f"{strategy}.jsonl").read_text().splitlines()) == 2


def test_ctrl_c_during_bench_mock_is_exit_130_and_stops_the_mock(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    async def interrupted_bench(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("open_strawberry.bench.run_bench", interrupted_bench)
    result = run("bench", "--mock", "--concurrency", "1", "--requests", "1", "--out", tmp_path / "b")
    assert (result.code, result.last_line) == (130, "open-strawberry: interrupted")
    assert "Traceback" not in result.err
    assert not multiprocessing.active_children()  # the mock's process was stopped on the way out


def test_bench_records_the_options_of_its_workload_only(tmp_path: Path) -> None:
    single, traces = tmp_path / "single", tmp_path / "traces"
    common = ("bench", "--mock", "--mock-ttft-ms", "1", "--mock-tokens-per-s", "0")
    assert run(*common, "--concurrency", "1", "--requests", "2", "--output-tokens", "4", "--out", single).code == 0
    assert run(*common, "--workload", "traces", "--concurrency", "2", "--traces", "2", "--max-turns", "2",
               "--out", traces).code == 0
    recorded = json.loads((single / "summary.json").read_text())["metadata"]["arguments"]
    assert (recorded["seed"], recorded["input_tokens"], recorded["output_tokens"], recorded["warmup"]) == (0, 128, 4, 0)
    assert not recorded.keys() & {"traces", "strategy", "max_turns"}
    recorded = json.loads((traces / "summary.json").read_text())["metadata"]["arguments"]
    assert (recorded["traces"], recorded["strategy"], recorded["max_turns"]) == (2, "nudge", 2)
    assert not recorded.keys() & {"seed", "slo", "input_tokens", "output_tokens", "warmup", "requests", "duration",
                                  "burstiness", "max_concurrency"}


def test_names_from_files_and_paths_are_printed_as_they_are_never_as_markup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # a summary as wide as its paths
    monkeypatch.chdir(tmp_path)  # a short title, on one line
    write(tmp_path / "[red]t.jsonl", [record("[/b]odd", 0, True, ["s1"])])
    result = run("stats", "[red]t.jsonl", "--per-problem")
    assert result.code == 0, result.err
    assert "[/b]odd" in result.out and "[red]t.jsonl" in result.out
    out_dir = tmp_path / "[" / "b]"  # the path holds "[/b]", a closing tag with no opening one
    result = run("demo", "--out-dir", out_dir, "--problems", "1", "--samples", "1", "--no-progress")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err and str(out_dir / "nudge.jsonl") in result.out


def test_an_option_given_as_double_dash_is_a_usage_error(traces: Path) -> None:
    result = run("stats", traces, "--k=--")  # argparse alone would hand the command an empty list
    assert result.code == 2 and "Traceback" not in result.err
    assert result.last_line == "open-strawberry: error: argument --k: expected one argument, not '--'"


def test_a_reader_that_stops_early_gets_no_complaint() -> None:
    process = subprocess.Popen([sys.executable, "-m", "open_strawberry.cli", "problems", "letters", "--count",
                                "50000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b'{"id":"letters-0"')
    process.stdout.close()  # as `| head -1` does
    assert process.wait(timeout=60) == 1
    assert process.stderr.read() == b""
    process.stderr.close()

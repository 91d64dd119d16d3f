"""Hostile input, generated: every command over bad option values and bad files.

For each example: a non-zero exit; stderr ends with one line, ``open-strawberry: error: ...``
or argparse's ``PROG: error: ...``; no traceback anywhere; and every file that was there
before is there after, byte for byte, with nothing left beside it. Commands run in this
process; anything that would need a server points at a closed port on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import re
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from open_strawberry.cli import main
from open_strawberry.messages import json_encoder
from open_strawberry.ui.security import is_loopback
from tests.traces.records import some_records, some_traces

ROOT = "@ROOT@"  # stands for the example's own folder in an argument
TRACES, PROBLEMS, SUMMARY = f"{ROOT}/traces.jsonl", f"{ROOT}/problems.jsonl", f"{ROOT}/summary.json"
BLOCKER, FOLDER, BAD = f"{ROOT}/file.txt", f"{ROOT}/folder", f"{ROOT}/bad.jsonl"
MESSAGE = re.compile(r"^open-strawberry(?: [\w-]+)*: error: \S")

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, so no one else takes it, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# -- values -------------------------------------------------------------------------------------

text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)


def _parses(value: str, kind: type) -> bool:
    try:
        kind(value)
    except (ValueError, OverflowError):
        return False
    return True


not_numbers = st.one_of(st.sampled_from(["", "abc", "1,5", "0x10", "1e", "--", "½", "one", "1 2"]),
                        text.filter(lambda v: not _parses(v, float)))
not_ints = st.one_of(not_numbers, st.sampled_from(["1.0", "2.5", "1e3", "nan", "inf"]),
                     st.floats().filter(lambda f: not (math.isfinite(f) and f.is_integer())).map(repr))
non_finite = st.sampled_from(["nan", "inf", "-inf", "NaN", "Infinity", "1e999", "-1e999"])


def _k_list(value: str) -> bool:
    """Whether ``stats --k`` takes ``value``: whole numbers from 1 as a comma list (``1,5``)."""
    try:
        return all(int(part) >= 1 for part in value.split(","))
    except ValueError:
        return False


def ints_below(least: int) -> st.SearchStrategy[str]:
    """Whole numbers below ``least`` (hugely negative ones too), or no whole number at all."""
    return st.one_of(st.integers(max_value=least - 1).map(str), not_ints)


def not_above_zero() -> st.SearchStrategy[str]:
    return st.one_of(st.floats(max_value=0.0).map(repr), non_finite, not_numbers)


def negative() -> st.SearchStrategy[str]:
    return st.one_of(st.floats(max_value=-1e-9).map(repr), non_finite, not_numbers)


def outside(low: float, high: float) -> st.SearchStrategy[str]:
    return st.one_of(st.floats(max_value=low, exclude_max=True).map(repr),
                     st.floats(min_value=high, exclude_min=True).map(repr), non_finite, not_numbers)


def option(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return values.map(lambda value: [f"{name}={value}"])


# -- files --------------------------------------------------------------------------------------


def _cut(content: bytes, at: int) -> bytes:
    """``content`` with its first line cut at ``at`` (of 1000) and the rest after it: a damaged middle."""
    first = content.index(b"\n")
    return content[: 1 + at * (first - 2) // 1000] + b"\n" + content


random_bytes = st.binary(min_size=1, max_size=200).filter(lambda b: b.strip()).map(lambda b: b + b"\n")
SHAPES = (b"[1, 2]\n", b'{"a": 1}\n', b'"text"\n', b"null\n", b"42\n", b"{}\n", b"{not json}\n")
MISTYPED_PROBLEM = b'{"id": "a", "prompt": 5, "answer": "1"}\n'  # has an id: a good enough --exclude line


def bad_file(valid: bytes, shapes: tuple[bytes, ...] = (*SHAPES, MISTYPED_PROBLEM)) -> st.SearchStrategy[str]:
    """A path to something where a file like ``valid`` belongs: missing, a folder, random bytes,
    JSON of the wrong shape, a copy of ``valid`` damaged in the middle. Returns the path; the
    content is written by :func:`files_for`."""
    return st.one_of(
        st.sampled_from([f"{ROOT}/missing.jsonl", FOLDER, f"{ROOT}/\udcff.jsonl"]),
        st.one_of(random_bytes, st.sampled_from(shapes), st.integers(0, 1000).map(lambda at: _cut(valid, at))).map(
            lambda content: f"{BAD}\0{content.hex()}"),
    )


def files_for(argv: list[str], root: Path) -> list[str]:
    """Write the workspace into ``root`` and resolve the arguments: ``@ROOT@`` to ``root``, and a
    bad file (``PATH\\0HEX``) to its path, its content written there."""
    some_traces(root / "traces.jsonl")
    (root / "sft.jsonl").write_bytes(SFT_CONTENT)
    (root / "problems.jsonl").write_text('{"id": "a", "prompt": "What is 1 + 1?", "answer": "2"}\n'
                                         '{"id": "b", "prompt": "What is 2 + 2?", "answer": "4"}\n')
    (root / "summary.json").write_text('{"request_throughput": 2.0, "ttft_ms": {"mean": 5.0, "p50": 4.0}}\n')
    (root / "file.txt").write_text("a regular file\n")
    (root / "base.gguf").write_bytes(GGUF_CONTENT)
    (root / "folder").mkdir()
    (root / "link.jsonl").symlink_to("traces.jsonl")
    resolved = []
    for arg in argv:
        arg = arg.replace(ROOT, str(root))
        if "\0" in arg:
            prefix, _, rest = arg.partition("=") if arg.startswith("--") else ("", "", arg)
            path, _, content = rest.partition("\0")
            Path(path).write_bytes(bytes.fromhex(content))
            arg = f"{prefix}={path}" if prefix else path
        resolved.append(arg)
    return resolved


def snapshot(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file() and not path.is_symlink()}


def refused(argv: list[str]) -> None:
    """Run ``argv`` in a fresh workspace and check that it was refused cleanly, changing nothing."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        args = files_for(argv, root)
        before = snapshot(root)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code: Any = main(args)
            except SystemExit as exc:
                code = exc.code
        printed = out.getvalue() + err.getvalue()
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        context = f"{args}\nexit {code}\n{printed}"
        assert code not in (0, None), context
        assert "Traceback" not in printed, context
        assert lines and MESSAGE.match(lines[-1]), context
        assert snapshot(root) == before, context


# -- the commands -------------------------------------------------------------------------------


def generate_cases(port: int) -> st.SearchStrategy[list[str]]:
    model = f"mock:m@http://127.0.0.1:{port}/v1"
    base = ["generate", PROBLEMS, f"--model={model}", f"--out={ROOT}/out.jsonl", "--no-progress"]
    bad_models = st.sampled_from(["nope", "x:y", "openai:", ":x", "", "openai:x@http://127.0.0.1:notaport/v1",
                                  "openai:x@http://127.0.0.1:70000/v1", "openai:x@http:///v1"])
    options = st.one_of(
        *(option(name, ints_below(1)) for name in ("--samples", "--max-traces", "--max-turns", "--max-tokens",
                                                   "--verify-window", "--max-concurrency", "--max-trace-tokens")),
        *(option(name, ints_below(0)) for name in ("--final-every", "--verify-every")),
        *(option(name, not_above_zero()) for name in ("--rpm", "--tpm", "--input-tpm", "--output-tpm",
                                                      "--timeout-s", "--call-timeout-s")),
        option("--temperature", outside(0, 2)), option("--veto-below", outside(0, 1)),
        option("--model", bad_models), option("--verifier-model", bad_models),
        option("--grader", st.sampled_from(["nope", "", "judge:", "judge:nope"])),
        option("--strategy", text.filter(lambda v: v not in ("nudge", "verify"))), option("--seed", not_ints),
        option("--prompt-field", st.sampled_from(["missing", "id"])),
        option("--problems-format", st.sampled_from(["gsm8k", "math", "parquet"])),
        option("--api-key-env", st.just("OPEN_STRAWBERRY_TEST_UNSET_KEY")),
        option("--config", bad_file(b'samples = 2\n')),
        option("--out", st.sampled_from([FOLDER, f"{BLOCKER}/out.jsonl", PROBLEMS, BLOCKER + "/"])),
    )
    problems = bad_file(b'{"id": "a", "prompt": "p", "answer": "1"}\n')
    return st.one_of(options.map(lambda extra: [*base, *extra]),
                     problems.map(lambda path: ["generate", path, *base[2:]]))


def demo_cases() -> st.SearchStrategy[list[str]]:
    base = ["demo", f"--out-dir={ROOT}/demo", "--problems=1", "--samples=1", "--no-progress"]
    return st.one_of(
        *(option(name, ints_below(1)) for name in ("--problems", "--samples", "--max-traces")),
        option("--seed", not_ints),
        option("--out-dir", st.sampled_from([BLOCKER, f"{BLOCKER}/demo", TRACES])),
    ).map(lambda extra: [*base, *extra])


def problems_cases() -> st.SearchStrategy[list[str]]:
    return st.one_of(
        text.filter(lambda name: name not in ("letters", "arithmetic", "codes", "mixed") and not name.startswith("-")
                    ).map(
            lambda name: ["problems", name]),
        st.one_of(option("--count", ints_below(1)), option("--seed", not_ints),
                  option("--out", st.sampled_from([FOLDER, f"{BLOCKER}/p.jsonl", BLOCKER + "/p"]))).map(
            lambda extra: ["problems", "letters", "--count=2", *extra]),
    )


def stats_cases() -> st.SearchStrategy[list[str]]:
    prices = st.one_of(
        st.tuples(negative(), st.just("1")).map(lambda p: f"mock:m={p[0]},{p[1]}"),
        st.tuples(st.just("1"), negative()).map(lambda p: f"mock:m={p[0]},{p[1]}"),
        st.sampled_from(["=1,2", "mock:m", "mock:m=1", "mock:m=1,2,3", "mock:m=,", ""]),
    )
    return st.one_of(
        bad_file(TRACES_CONTENT).map(lambda path: ["stats", path]),
        st.one_of(option("--k", ints_below(1).filter(lambda v: not _k_list(v))), option("--price", prices)).map(
            lambda extra: ["stats", TRACES, *extra]),
    )


def export_cases() -> st.SearchStrategy[list[str]]:
    kinds = st.sampled_from(["sft", "dpo"])
    outs = st.sampled_from([TRACES, f"{ROOT}/./traces.jsonl", f"{ROOT}/link.jsonl", FOLDER,
                            f"{BLOCKER}/out.jsonl"])
    return st.one_of(
        st.tuples(kinds, bad_file(TRACES_CONTENT)).map(lambda c: ["export", c[0], c[1], f"--out={ROOT}/o.jsonl"]),
        st.tuples(kinds, outs).map(lambda c: ["export", c[0], TRACES, f"--out={c[1]}"]),
        ints_below(1).map(lambda v: ["export", "dpo", TRACES, f"--out={ROOT}/o.jsonl", f"--max-pairs={v}"]),
        text.filter(lambda v: v not in ("messages", "multi-turn", "collapsed")).map(
            lambda v: ["export", "sft", TRACES, f"--out={ROOT}/o.jsonl", f"--format={v}"]),
    )


def select_cases() -> st.SearchStrategy[list[str]]:
    base = ["select", TRACES, f"--out={ROOT}/next.jsonl"]
    return st.one_of(
        bad_file(TRACES_CONTENT).map(lambda path: ["select", path, f"--out={ROOT}/next.jsonl"]),
        st.one_of(
            option("--exclude", bad_file(TRACES_CONTENT, SHAPES)),
            option("--min-pass", outside(0, 1)), option("--max-pass", outside(0, 1)),
            st.just(["--min-pass=0.9", "--max-pass=0.1"]),
            option("--out", st.sampled_from([TRACES, f"{ROOT}/link.jsonl", f"{ROOT}/./traces.jsonl", FOLDER,
                                             f"{BLOCKER}/next.jsonl"])),
            st.just([f"--exclude={PROBLEMS}", f"--out={PROBLEMS}"]),
        ).map(lambda extra: [*base, *extra]),
    )


def a_list_of(value: str, valid: Callable[[str], bool]) -> bool:
    """Whether ``value`` is a comma list that the option would take ("1,5" is one, for a sweep)."""
    parts = [part.strip() for part in value.split(",") if part.strip()]
    return bool(parts) and all(valid(part) for part in parts)


def bench_cases() -> st.SearchStrategy[list[str]]:
    out = f"--out={ROOT}/bench"
    closed = ["bench", "--mock", "--concurrency=1", "--requests=1", out]
    opened = ["bench", "--mock", "--rate=5", "--requests=1", out]
    loads = st.one_of(ints_below(1), not_numbers, st.sampled_from(["1,2.5", "1,,0", ",", "2,-1"])).filter(
        lambda v: not a_list_of(v, lambda part: _parses(part, int) and int(part) >= 1))
    single = st.one_of(
        option("--concurrency", loads), option("--requests", ints_below(1)), option("--warmup", ints_below(0)),
        option("--duration", not_above_zero()), option("--input-tokens", ints_below(1)),
        option("--output-tokens", ints_below(1)), option("--seed", not_ints),
        option("--percentiles", st.one_of(outside(0, 100), st.sampled_from(["50,,99", "p99"])).filter(
            lambda v: not a_list_of(v, lambda part: _parses(part, float) and 0 <= float(part) <= 100))),
        option("--slo", st.one_of(st.sampled_from(["ttft", "ttft=", "ttft=1=2", "latency=5", "ttft=5,,e2e=1"]),
                                  negative().map(lambda v: f"ttft={v}"))),
        option("--mock-ttft-ms", negative()), option("--mock-tokens-per-s", negative()),
        option("--traces", st.integers(1, 10).map(str)), option("--strategy", st.just("verify")),
        option("--out", st.sampled_from([BLOCKER, f"{BLOCKER}/bench"])),
    ).map(lambda extra: [*closed, *extra])
    rates = not_above_zero().filter(lambda v: not a_list_of(v, lambda part: _parses(part, float)
                                                              and 0 < float(part) < math.inf))
    rated = st.one_of(option("--rate", rates), option("--burstiness", not_above_zero()),
                      option("--max-concurrency", ints_below(1)), st.just(["--concurrency=2"])).map(
        lambda extra: [*opened, *extra])
    traces = st.sampled_from(["--seed=1", "--slo=ttft=5", "--input-tokens=5", "--output-tokens=5", "--warmup=1",
                              "--requests=3", "--duration=2", "--burstiness=0.5", "--max-concurrency=2",
                              "--concurrency=1,2", "--traces=0", "--max-turns=0"]).map(
        lambda extra: ["bench", "--mock", "--workload=traces", "--concurrency=2", out, extra])
    models = st.sampled_from(["nope", "x:y", "openai:x@http://127.0.0.1:notaport/v1", ""]).map(
        lambda model: ["bench", f"--model={model}", "--concurrency=1", "--requests=1", out])
    no_model = st.just(["bench", "--concurrency=1", "--requests=1", out])
    return st.one_of(single, rated, traces, models, no_model)


def compare_cases() -> st.SearchStrategy[list[str]]:
    return st.tuples(bad_file(SUMMARY_CONTENT), st.booleans()).map(
        lambda c: ["bench", "compare", c[0], SUMMARY] if c[1] else ["bench", "compare", SUMMARY, c[0]])


def mock_server_cases() -> st.SearchStrategy[list[str]]:
    return st.one_of(
        option("--port", st.one_of(st.integers(max_value=-1).map(str), st.integers(min_value=65536).map(str),
                                   not_ints)),
        option("--ttft-ms", negative()), option("--tokens-per-s", negative()), option("--stall-s", negative()),
        option("--tokens-per-chunk", ints_below(1)), option("--confident-after", ints_below(0)),
        option("--jitter", outside(0, 1)), option("--accuracy", outside(0, 1)), option("--fault-rate", outside(0, 1)),
        *(option(f"--{name}", not_above_zero()) for name in ("rpm", "tpm", "input-tpm", "output-tpm")),
        option("--flavor", text.filter(lambda v: v not in ("openai", "llamacpp", "ollama"))),
        option("--seed", not_ints), st.just(["--host="]),
    ).map(lambda extra: ["mock-server", *extra])


def train_cases() -> st.SearchStrategy[list[str]]:
    """Options over a model folder that is not one (valid options are refused there too, before
    anything is written), and bad data files."""
    base = ["train", "sft", f"{ROOT}/sft.jsonl", f"--model={FOLDER}", f"--out={ROOT}/trained"]
    mixes = st.one_of(st.sampled_from(["builtin:chat", "builtin:chat:0", "builtin:chat:1", ":0.5", "x:0.5:",
                                       f"{ROOT}/missing.jsonl:0.5"]),
                      outside(0, 1).map(lambda v: f"builtin:chat:{v}"))
    options = st.one_of(
        *(option(name, ints_below(1)) for name in ("--max-steps", "--batch-size", "--grad-accum", "--max-length",
                                                   "--lora-r", "--save-steps", "--threads")),
        *(option(name, not_above_zero()) for name in ("--epochs", "--learning-rate", "--beta", "--lora-alpha")),
        option("--mix", mixes), option("--seed", not_ints),
        option("--model", st.sampled_from([f"{ROOT}/missing", BLOCKER, f"{ROOT}/m.gguf", "smollm2"])),
    ).map(lambda extra: [*base, *extra])
    data = st.tuples(st.sampled_from(["sft", "dpo"]), bad_file(SFT_CONTENT)).map(
        lambda c: ["train", c[0], c[1], f"--model={FOLDER}", f"--out={ROOT}/trained"])
    return st.one_of(options, data)


def model_cases() -> st.SearchStrategy[list[str]]:
    return st.one_of(
        bad_file(GGUF_CONTENT).map(lambda path: ["model", "import-gguf", path, f"--out={ROOT}/imported"]),
        st.sampled_from([FOLDER, BLOCKER, TRACES]).map(lambda out: ["model", "import-gguf", BLOCKER, f"--out={out}"]),
    )


def export_gguf_cases() -> st.SearchStrategy[list[str]]:
    """A checkpoint folder that is none (missing, empty, a file), an output that is a folder, a
    file of another kind or inside the model, and a tensor type that does not exist."""
    models = st.sampled_from([f"{ROOT}/missing", FOLDER, BLOCKER, f"{ROOT}/base.gguf"])
    outs = st.sampled_from([f"{ROOT}/out.gguf", FOLDER, BLOCKER, TRACES, f"{FOLDER}/out.gguf"])
    return st.one_of(
        st.tuples(models, outs).map(lambda c: ["model", "export-gguf", c[0], f"--out={c[1]}"]),
        text.filter(lambda v: v not in ("f32", "f16", "bf16", "q8_0")).map(
            lambda v: ["model", "export-gguf", FOLDER, f"--out={ROOT}/out.gguf", f"--type={v}"]),
    )


def bootstrap_cases() -> st.SearchStrategy[list[str]]:
    """One bad option each over a run that would start (a new run folder, a GGUF base): the run
    must be refused before it claims its folder (the test stops it there)."""
    base = ["bootstrap", f"--run-dir={ROOT}/run", f"--base={ROOT}/base.gguf", "--rounds=1"]
    mixes = st.one_of(st.sampled_from(["builtin:chat", "builtin:chat:0", "builtin:chat:1", ":0.5", "x:0.5:",
                                       f"{ROOT}/missing.jsonl:0.5"]),
                      outside(0, 1).map(lambda v: f"builtin:chat:{v}"))
    options = st.one_of(
        *(option(name, ints_below(1)) for name in (
            "--level", "--max-level", "--eval-problems", "--eval-samples", "--pool", "--samples", "--batch-size",
            "--grad-accum", "--max-length", "--max-steps", "--max-turns", "--max-tokens", "--parallel", "--threads")),
        *(option(name, ints_below(0)) for name in ("--rounds", "--final-every")),
        *(option(name, outside(0, 1)) for name in ("--mastery", "--min-pass", "--max-pass")),
        *(option(name, not_above_zero()) for name in ("--epochs", "--learning-rate")),
        option("--temperature", outside(0, 2)), option("--seed", not_ints), option("--mix", mixes),
        st.just(["--min-pass=0.9", "--max-pass=0.1"]), st.just(["--mix=builtin:chat:0.6", "--mix=builtin:chat:0.6"]),
        st.sampled_from(["letters", "arithmetic"]).map(lambda kind: [f"--problems={kind}", "--level=99"]),
        *(option(name, text.filter(lambda v, ok=ok: v not in ok)) for name, ok in (
            ("--problems", ("letters", "arithmetic", "codes", "mixed")), ("--train", ("sft", "dpo", "sft+dpo")),
            ("--sft-format", ("multi-turn", "collapsed")), ("--strategy", ("nudge", "verify")),
            ("--gguf-type", ("f32", "f16", "bf16", "q8_0")))),
        option("--base", st.sampled_from([f"{ROOT}/missing.gguf", BLOCKER, FOLDER, TRACES])),
        option("--run-dir", st.sampled_from([BLOCKER, ROOT, f"{BLOCKER}/run", TRACES])),
    )
    return options.map(lambda extra: [*base, *extra])


def ray_cases(port: int) -> st.SearchStrategy[list[str]]:
    """``generate --ray`` with an address that is none, shard and worker counts below one, and
    the Ray options without --ray: refused before a cluster is joined or started (the test stops
    it there)."""
    base = ["generate", PROBLEMS, f"--model=mock:m@http://127.0.0.1:{port}/v1", f"--out={ROOT}/out.jsonl",
            "--no-progress"]
    addresses = st.one_of(st.sampled_from(["garbage", ":1", "http://127.0.0.1:1", "host:notaport",
                                           "127.0.0.1:70000", "ray://", "a b:1", "127.0.0.1:-1"]),
                          text.filter(lambda v: v.strip() and ":" not in v and v != "auto"))
    options = st.one_of(
        option("--ray", addresses),
        *(ints_below(1).map(lambda v, name=name: ["--ray", f"{name}={v}"]) for name in ("--ray-shards",
                                                                                         "--ray-workers")),
        st.tuples(st.sampled_from(["--ray-shards", "--ray-workers"]), st.integers(1, 10**12)).map(
            lambda c: [f"{c[0]}={c[1]}"]),  # without --ray
    )
    return options.map(lambda extra: [*base, *extra])


def view_cases() -> st.SearchStrategy[list[str]]:
    """One bad thing each, the rest valid (any free port, loopback): a port out of range, a host
    beyond loopback without --allow-remote, with it one this machine has not got, a traces path
    that is missing, a folder or undecodable, a folder to save to, a model that is not one."""
    base = ["view", TRACES, "--port=0", f"--save-to={ROOT}/saved.jsonl"]
    unbindable = st.sampled_from(["192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1", "1.2.3.4"])
    options = st.one_of(
        option("--port", st.one_of(st.integers(max_value=-1).map(str), st.integers(min_value=65536).map(str),
                                   not_ints)),
        option("--host", st.one_of(st.sampled_from(["0.0.0.0", "::", "", "192.168.1.1", "example.invalid", "\r",
                                                    "a\nb"]),
                                   text.filter(lambda v: not is_loopback(v)))),
        unbindable.map(lambda host: ["--allow-remote", f"--host={host}"]),
        option("--save-to", st.sampled_from([FOLDER, ROOT])),
        option("--model", st.sampled_from(["nope", "x:y", "openai:", ":x", "", "mock:m@http:///v1",
                                           "mock:m@http://127.0.0.1:70000/v1"])),
    ).map(lambda extra: [*base, *extra])
    paths = st.sampled_from([f"{ROOT}/missing.jsonl", FOLDER, ROOT, f"{ROOT}/\udcff.jsonl"]).map(
        lambda path: ["view", path, "--port=0", f"--save-to={ROOT}/saved.jsonl"])
    return st.one_of(options, paths)


GGUF_CONTENT = b"GGUF" + bytes(60) + b"\n"  # a GGUF file's first bytes: enough for a check, not a model
TRACES_CONTENT = b"".join(json_encoder.encode(record) + b"\n" for record in some_records()[:2])
SUMMARY_CONTENT = b'{"request_throughput": 2.0, "ttft_ms": {"mean": 5.0}}\n'
SFT_CONTENT = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


class ServerStarted(Exception):
    """The mock server was about to serve: the options should have been refused."""


@contextlib.asynccontextmanager
async def no_server(*_args: object, **_kwargs: object) -> AsyncIterator[None]:
    raise ServerStarted
    yield


# -- the tests ----------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_generate_refuses_hostile_input(closed_port: int, data: st.DataObject) -> None:
    refused(data.draw(generate_cases(closed_port)))


@SETTINGS
@given(argv=demo_cases())
def test_demo_refuses_hostile_input(argv: list[str]) -> None:
    refused(argv)


@SETTINGS
@given(argv=problems_cases())
def test_problems_refuses_hostile_input(argv: list[str]) -> None:
    refused(argv)


@SETTINGS
@given(argv=stats_cases())
def test_stats_refuses_hostile_input(argv: list[str]) -> None:
    refused(argv)


@SETTINGS
@given(argv=export_cases())
def test_export_refuses_hostile_input(argv: list[str]) -> None:
    refused(argv)


@SETTINGS
@given(argv=select_cases())
def test_select_refuses_hostile_input(argv: list[str]) -> None:
    refused(argv)


@SETTINGS
@given(argv=bench_cases())
def test_bench_refuses_hostile_input(argv: list[str]) -> None:
    refused(argv)


@SETTINGS
@given(argv=compare_cases())
def test_bench_compare_refuses_hostile_input(argv: list[str]) -> None:
    refused(argv)


@SETTINGS
@given(argv=mock_server_cases())
def test_mock_server_refuses_hostile_input(argv: list[str]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("open_strawberry.mock.open_mock_server", no_server)  # what the command imports when it runs
        refused(argv)


@SETTINGS
@given(argv=train_cases())
def test_train_refuses_hostile_input(argv: list[str]) -> None:
    refused(argv)


@SETTINGS
@given(argv=model_cases())
def test_model_import_refuses_hostile_input(argv: list[str]) -> None:
    refused(argv)


@SETTINGS
@given(argv=export_gguf_cases())
def test_model_export_refuses_hostile_input(argv: list[str]) -> None:
    refused(argv)


@SETTINGS
@given(argv=bootstrap_cases())
def test_bootstrap_refuses_hostile_input(argv: list[str]) -> None:
    from open_strawberry.bootstrap import run

    claim = run._claim_run

    def claimed(*args: Any) -> None:  # the run's folder is claimed: the next step imports the model, trains...
        claim(*args)
        raise ServerStarted

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run, "_claim_run", claimed)
        refused(argv)


@SETTINGS
@given(data=st.data())
def test_generate_on_ray_refuses_hostile_input(closed_port: int, data: st.DataObject) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("open_strawberry.distributed.runner.open_cluster", no_server)  # Ray would start: not refused
        refused(data.draw(ray_cases(closed_port)))


@SETTINGS
@given(argv=view_cases())
def test_view_refuses_hostile_input(argv: list[str]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("open_strawberry.ui.server.open_site", no_server)  # the site would serve: not refused
        refused(argv)


def test_a_url_password_beside_an_api_key_is_refused_before_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both would be sent in the Authorization header (aiohttp: "Cannot combine AUTHORIZATION
    header"), failing every trace: refused in one line, naming the clash, the password masked."""
    monkeypatch.setenv("VLLM_API_KEY", "tok_hostile_input_key")
    with socket.socket() as listening:  # connections succeed (the kernel's backlog); nothing answers
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        argv = ["generate", PROBLEMS, f"--model=vllm:m@http://user:s3cret-pass@127.0.0.1:"
                f"{listening.getsockname()[1]}/v1", f"--out={ROOT}/out.jsonl", "--no-progress"]
        refused(argv)
        err = io.StringIO()
        with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stderr(err), \
                contextlib.redirect_stdout(io.StringIO()):
            main(files_for(argv, Path(folder)))
    assert "user and password" in err.getvalue() and "VLLM_API_KEY" in err.getvalue()
    assert "s3cret-pass" not in err.getvalue()


def test_an_unreachable_server_is_named_without_its_password(closed_port: int) -> None:
    err = io.StringIO()
    argv = ["generate", PROBLEMS, f"--model=vllm:m@http://user:s3cret-pass@127.0.0.1:{closed_port}/v1",
            f"--out={ROOT}/out.jsonl", "--no-progress"]
    refused(argv)
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        main(files_for(argv, Path(folder)))
    assert "cannot reach the model server at http://***@127.0.0.1" in err.getvalue()
    assert "s3cret-pass" not in err.getvalue()

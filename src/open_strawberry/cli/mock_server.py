"""``mock-server``: serve the scripted mock LLM until interrupted.

The mock (an aiohttp server) is imported when the command runs. An option left out stays None
and :class:`~open_strawberry.mock.MockConfig`'s default holds.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from open_strawberry.cli.checks import check_count, check_number
from open_strawberry.errors import ConfigurationError

if TYPE_CHECKING:
    from open_strawberry.mock import MockConfig

__all__ = ["DEFAULT_PORT", "THINKING_MODES", "add_parsers", "run_mock_server"]

DEFAULT_PORT = 8765  # open_strawberry.backends.models.DEFAULT_MOCK_PORT, the port mock: models call by default

# The fields of MockConfig set by the option of the same name (--ttft-ms sets ttft_s).
_CONFIG_OPTIONS = ("tokens_per_s", "tokens_per_chunk", "jitter", "accuracy", "confident_after", "flavor", "seed",
                   "rpm", "tpm", "input_tpm", "output_tpm", "stall_s", "thinking")
# open_strawberry.mock.config.Thinking (the mock is not imported for --help; a test holds the two equal)
THINKING_MODES = ("off", "reasoning", "reasoning_content", "both", "reasoning_details", "think_tags", "think_tags_open")


def add_parsers(commands: Any) -> None:
    mock = commands.add_parser("mock-server", help="serve the mock LLM (OpenAI and Anthropic wire formats)",
                               run=run_mock_server)
    mock.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    mock.add_argument("--port", type=int, default=DEFAULT_PORT,
                      help=f"port (default: {DEFAULT_PORT}; 0 picks a free one)")
    mock.add_argument("--ttft-ms", type=float, help="time to first token")
    mock.add_argument("--tokens-per-s", type=float, help="streaming pace after the first token (0: no pacing)")
    mock.add_argument("--tokens-per-chunk", type=int, help="tokens in each streamed chunk (default: 1)")
    mock.add_argument("--jitter", type=float, help="vary each delay by up to this fraction")
    mock.add_argument("--accuracy", type=float, help="share of traces on the right path")
    mock.add_argument("--confident-after", type=int, help="steps before the reasoner gives a final answer")
    mock.add_argument("--flavor", choices=["openai", "llamacpp", "ollama"],
                      help="which server's streaming quirks to mimic")
    mock.add_argument("--thinking", choices=THINKING_MODES, metavar="MODE",
                      help="reply as a reasoning model on the OpenAI wire, its thinking sent as: reasoning (vLLM, "
                           "ollama), reasoning_content (llama.cpp, SGLang, DeepSeek), both (older vLLM), "
                           "reasoning_details (OpenRouter, signed), think_tags (<think>...</think> inside content), "
                           "think_tags_open (the same without the opening tag); off: no thinking (default). The "
                           "Anthropic wire thinks whenever a request asks for it (thinking: {type: enabled}), "
                           "whatever this says")
    mock.add_argument("--seed", type=int, help="seed of the replies; a request's own seed is mixed in (default: 0)")
    for budget, what in (("rpm", "requests"), ("tpm", "tokens"), ("input-tpm", "input tokens"),
                         ("output-tpm", "output tokens")):
        mock.add_argument(f"--{budget}", type=float, default=None, help=f"{what} per minute (default: unlimited)")
    mock.add_argument("--fault-rate", type=float, default=0.0,
                      help="share of requests that fail, spread over every kind of fault (default: 0)")
    mock.add_argument("--stall-s", type=float, help="how long a stall fault lasts")
    mock.add_argument("--batch-delay-s", type=float, default=0.0,
                      help="how long each batch stays in progress (default: 0)")
    mock.add_argument("--batch-errored", type=float, default=0.0,
                      help="share of batch requests that come back errored (default: 0)")
    mock.add_argument("--batch-expired", type=float, default=0.0,
                      help="share of batch requests that come back expired (default: 0)")


def _check(args: argparse.Namespace) -> None:
    """Every option, named in the error, before the server starts."""
    if not args.host.strip():
        raise ConfigurationError("--host names no address (127.0.0.1 serves this machine only)")
    check_count("--port", args.port, at_least=0, at_most=65535)
    check_number("--ttft-ms", args.ttft_ms)
    check_number("--tokens-per-s", args.tokens_per_s)
    check_count("--tokens-per-chunk", args.tokens_per_chunk)
    check_number("--jitter", args.jitter, high=1.0)
    check_number("--accuracy", args.accuracy, high=1.0)
    check_count("--confident-after", args.confident_after, at_least=0)
    for option in ("rpm", "tpm", "input_tpm", "output_tpm"):
        check_number(f"--{option.replace('_', '-')}", getattr(args, option), low_open=True)
    check_number("--fault-rate", args.fault_rate, high=1.0)
    check_number("--stall-s", args.stall_s)
    check_number("--batch-delay-s", args.batch_delay_s)
    check_number("--batch-errored", args.batch_errored, high=1.0)
    check_number("--batch-expired", args.batch_expired, high=1.0)


def _config(args: argparse.Namespace) -> MockConfig:
    from open_strawberry.mock import FaultRates, MockConfig
    from open_strawberry.mock.config import BatchBehaviour

    given = {name: getattr(args, name) for name in _CONFIG_OPTIONS if getattr(args, name) is not None}
    if args.ttft_ms is not None:
        given["ttft_s"] = args.ttft_ms / 1000
    batch = BatchBehaviour(delay_s=args.batch_delay_s, errored=args.batch_errored, expired=args.batch_expired)
    config = MockConfig(**given, faults=FaultRates.spread(args.fault_rate), batch=batch)
    config.check()
    return config


def run_mock_server(args: argparse.Namespace) -> int:
    """Serve the scripted mock LLM until interrupted. OpenAI clients use http://HOST:PORT/v1, Anthropic clients
    http://HOST:PORT.
    """
    import signal

    import anyio

    from open_strawberry.mock import open_mock_server

    _check(args)
    config = _config(args)

    async def serve() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with open_mock_server(config, host=args.host, port=args.port) as server:
                print(f"mock server listening on {server.url} (OpenAI: {server.openai_base_url}, "
                      f"Anthropic: {server.url})", flush=True)
                async for _ in signals:
                    break

    try:
        anyio.run(serve)
    except OSError as exc:
        print(f"open-strawberry: error: cannot serve on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    return 0

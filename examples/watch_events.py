"""Watching a run live from Python: print one trace's text as it streams, count the rest.

    python examples/watch_events.py [OUT_DIR]

Subscribe to an EventStream before the run, read the subscription while the run goes on;
the stream ends when the run does. A slow reader misses events rather than slowing the run.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import anyio

from open_strawberry import EventStream, generate
from open_strawberry.events import TextDelta, TraceFinished, TurnStarted
from open_strawberry.mock import MockConfig, open_mock_server


async def main(out_dir: Path) -> None:
    events = EventStream()
    stream = events.subscribe()
    counts: Counter[str] = Counter()
    watched: str | None = None
    mock = MockConfig(ttft_s=0.01, tokens_per_s=2000, tokens_per_chunk=2)
    async with open_mock_server(mock) as server, anyio.create_task_group() as tg:
        tg.start_soon(lambda: generate(problems="builtin:letters:6", model=f"mock:r@{server.openai_base_url}",
                                       out=str(out_dir / "traces.jsonl"), events=events))
        async with stream:
            async for event in stream:  # ends when the run does
                counts[type(event).__name__] += 1
                if isinstance(event, TurnStarted) and watched in (None, event.trace_id):
                    watched = event.trace_id
                    print(f"\n[turn {event.turn}, asked by a {event.kind} prompt] ", end="")
                elif isinstance(event, TextDelta) and event.trace_id == watched:
                    print(event.text, end="", flush=True)
                elif isinstance(event, TraceFinished) and event.trace_id == watched:
                    print(f"\n[trace finished: {event.status}, correct={event.correct}]")
    print(dict(counts))


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1] if len(sys.argv) > 1 else "out/watch_events"))

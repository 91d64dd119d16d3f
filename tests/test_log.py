"""Logs carry actor and trace ids from contextvars and never show a key."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr

import structlog
from structlog.testing import capture_logs

from open_strawberry import GenerateRequest, Mailbox, configure_logging, open_actor_system
from open_strawberry.log import redact_secrets
from tests.helpers import Echo, MemorySink, loop_specs, new_traces


def test_secrets_are_masked_by_key_and_by_shape() -> None:
    event = redact_secrets(None, "info", {
        "api_key": "abc", "Authorization": "Bearer x", "url": "http://h?key=sk-abcdefghijklmnop", "n": 3,
        "input_tokens": 12})
    assert event == {"api_key": "***", "Authorization": "***", "url": "http://h?key=***", "n": 3,
                     "input_tokens": 12}


def test_json_logs_are_one_object_per_line_with_bound_context() -> None:
    stream = io.StringIO()
    with redirect_stderr(stream):
        configure_logging(json=True, level="info")
        try:
            structlog.contextvars.bind_contextvars(actor="generator", trace_id="t9")
            structlog.get_logger().info("turn_done", api_key="sk-secret-secret-secret")
        finally:
            structlog.contextvars.clear_contextvars()
            structlog.reset_defaults()
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["event"] == "turn_done"
    assert (line["actor"], line["trace_id"], line["level"]) == ("generator", "t9", "info")
    assert line["api_key"] == "***"
    assert "sk-secret" not in stream.getvalue()


async def test_a_failed_trace_is_logged_with_its_actor_and_trace_id() -> None:
    def explode(_message: object) -> None:
        raise ValueError("bad turn")

    configure_logging(level="info")  # the processors that merge contextvars
    try:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            async with open_actor_system(loop_specs(generator=Echo(explode), sink=MemorySink()),
                                         max_traces=2) as system:
                await system.feed(new_traces(1))
    finally:
        structlog.reset_defaults()
    failed = [e for e in logs if e["event"] == "trace_failed"]
    assert failed == [{"event": "trace_failed", "log_level": "warning", "actor": "generator", "trace_id": "t0",
                       "error": "ValueError: bad turn"}]


class LogsBetweenMessages(Echo):
    """A generator whose loop logs after passing each message on (forwarded or failed)."""

    async def run(self, mailbox: Mailbox) -> None:
        log = structlog.get_logger()
        async for message in mailbox:
            try:
                result = await self.handle(message)
            except Exception as exc:
                await mailbox.fail(message, exc)
            else:
                await mailbox.forward(message, result)
            log.info("between_messages")


async def test_log_lines_between_messages_carry_no_stale_trace_id() -> None:
    def explode(message: GenerateRequest) -> None:
        if message.state.trace_id == "t1":
            raise ValueError("bad turn")

    configure_logging(level="info")
    try:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            async with open_actor_system(loop_specs(turns=2, generator=LogsBetweenMessages(explode),
                                                    sink=MemorySink()), max_traces=2) as system:
                await system.feed(new_traces(3))
    finally:
        structlog.reset_defaults()
    between = [e for e in logs if e["event"] == "between_messages"]
    # two turns for t0 and t2, one (failed) for t1; none of them names a trace
    assert between == [{"event": "between_messages", "log_level": "info", "actor": "generator"}] * 5

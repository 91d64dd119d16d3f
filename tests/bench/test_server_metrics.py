"""The traces workload's figures from a llama.cpp server's own ``/metrics``: the busy share of
its decode steps over the run, read before and after it, where the server states its slots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from open_strawberry.bench.report import brief_traces, write_trace_outputs
from open_strawberry.bench.server_metrics import busy_share, llamacpp_metrics
from open_strawberry.bench.traces import run_trace_bench
from tests.helpers import serve_app

METRICS = """# HELP llamacpp:n_decode_total Total number of llama_decode() calls
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total {decodes}
# HELP llamacpp:n_busy_slots_per_decode Average number of busy slots per llama_decode() call
# TYPE llamacpp:n_busy_slots_per_decode counter
llamacpp:n_busy_slots_per_decode {per_decode}
llamacpp:prompt_tokens_total 1.2e3
other_server:requests 7
"""


def llama_like(slots: int = 2, busy_per_call: float = 15.0, metrics: bool = True) -> web.Application:
    """A stand-in of llama-server: ``/props``, ``/metrics`` whose counters move with each chat call
    (10 decode steps a call, ``busy_per_call`` busy slot-steps), and streamed chat replies."""
    state = {"decodes": 100.0, "busy": 100.0}

    async def props(_: web.Request) -> web.Response:
        return web.json_response({"total_slots": slots})

    async def metrics_page(_: web.Request) -> web.Response:
        if not metrics:
            return web.Response(status=501, text="metrics are off")
        return web.Response(text=METRICS.format(decodes=state["decodes"], per_decode=state["busy"] / state["decodes"]))

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        state["decodes"] += 10
        state["busy"] += busy_per_call
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for chunk in ({"choices": [{"index": 0, "delta": {"content": "Thinking about it: 4."}, "finish_reason": None}]},
                      {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26}}):
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_get("/props", props)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def test_the_busy_share_weights_the_mean_by_the_steps_of_the_run() -> None:
    before = {"llamacpp:n_decode_total": 100.0, "llamacpp:n_busy_slots_per_decode": 2.0}
    after = {"llamacpp:n_decode_total": 300.0, "llamacpp:n_busy_slots_per_decode": 3.0}
    assert busy_share(before, after, 4) == pytest.approx((900 - 200) / 200 / 4)
    assert busy_share(before, before, 4) is None  # no step between the readings
    assert busy_share({}, after, 4) is None and busy_share(before, after, 0) is None


async def test_the_counters_are_read_from_the_page_and_nothing_else() -> None:
    async with serve_app(llama_like()) as url:
        found = await llamacpp_metrics(f"{url}/v1")
    assert found == {"llamacpp:n_decode_total": 100.0, "llamacpp:n_busy_slots_per_decode": 1.0,
                     "llamacpp:prompt_tokens_total": 1200.0}


async def test_a_server_without_metrics_or_one_that_redirects_states_none() -> None:
    async with serve_app(llama_like(metrics=False)) as url:
        assert await llamacpp_metrics(f"{url}/v1") is None
    app = web.Application()

    async def elsewhere(_: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("http://127.0.0.1:9/metrics")

    app.router.add_get("/metrics", elsewhere)
    async with serve_app(app) as url:
        assert await llamacpp_metrics(url) is None
    assert await llamacpp_metrics("http://127.0.0.1:9/v1", timeout_s=2.0) is None


async def test_the_traces_workload_reports_the_servers_busy_share(tmp_path: Path) -> None:
    async with serve_app(llama_like(slots=2, busy_per_call=15.0)) as url:
        document = await run_trace_bench(f"llamacpp:m@{url}/v1", tmp_path, traces=3, concurrency=2,
                                         strategy="nudge", max_turns=2, percentiles=(50, 99))
    assert document["turns"] > 0
    # every call: 10 steps with 15 busy slot-steps, of 2 slots
    assert (document["server_slots"], document["server_busy_share"]) == (2, pytest.approx(0.75))
    write_trace_outputs(tmp_path, document, {})
    line = "server: its 2 slots busy in 75.0% of its decode steps (llama.cpp /metrics)"
    assert f"- {line}" in (tmp_path / "report.md").read_text()
    assert f"  {line}" in brief_traces(json.loads((tmp_path / "summary.json").read_text()), tmp_path)


async def test_a_server_that_states_no_slots_gets_no_busy_share(tmp_path: Path) -> None:
    from open_strawberry.mock import MockConfig, open_mock_server

    async with open_mock_server(MockConfig(ttft_s=0.001, tokens_per_s=4000)) as server:
        document = await run_trace_bench(f"mock:reasoner@{server.openai_base_url}", tmp_path, traces=2,
                                         concurrency=2, strategy="nudge", max_turns=2, percentiles=(50,))
    assert document["server_busy_share"] is None
    write_trace_outputs(tmp_path, document, {})
    assert "slots busy" not in (tmp_path / "report.md").read_text()

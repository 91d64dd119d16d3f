"""``serve smollm2`` with the real llama-server (``make test-real``), then ``generate`` against
the model string it prints, copied as a newcomer would; Ctrl-C stops it (exit 130)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import child_process, stop

pytestmark = pytest.mark.timeout(900)


def test_serve_smollm2_then_generate_against_the_printed_model(tmp_path: Path) -> None:
    env = {**os.environ, "OPEN_STRAWBERRY_CACHE": str(tmp_path / "cache")}
    env.pop("OPEN_STRAWBERRY_LLAMA_SERVER", None)
    serve = [sys.executable, "-m", "open_strawberry.cli", "serve", "smollm2", "--port", "0", "--parallel", "2",
             "--context", "2048"]
    with child_process(serve, env=env) as server:
        model = server.stdout.readline().strip()  # type: ignore[union-attr]
        assert model.startswith("llamacpp:smollm2@http://127.0.0.1:"), (model, server.poll())
        out = tmp_path / "traces.jsonl"
        run = subprocess.run([sys.executable, "-m", "open_strawberry.cli", "generate", "builtin:arithmetic:2",
                              "--model", model, "--out", str(out), "--max-turns", "2", "--max-tokens", "48",
                              "--no-progress"],
                             capture_output=True, text=True, env=env, timeout=600, check=False)
        assert run.returncode in (0, 3), run.stderr  # 3: a share of traces failed, which a 135M model may do
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(records) == 2 and all(r["status"] != "error" for r in records), run.stderr
        assert all(r["model"] == model or r["model"].startswith("llamacpp:smollm2") for r in records)
        _, err = stop(server)
    assert server.returncode == 130, err

"""Every example runs, as a user would run it, and does what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from open_strawberry.messages import record_decoder

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_minimal_system_writes_a_graded_record_per_problem(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    result = subprocess.run([sys.executable, str(EXAMPLES / "minimal_system.py"), str(out)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "100 traces written" in result.stdout
    records = [record_decoder.decode(line) for line in out.read_bytes().splitlines()]
    assert len(records) == 100
    assert all(r.correct and r.status == "final" for r in records)

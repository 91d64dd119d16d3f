"""The generated doc pages match the code they describe."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_generated_docs_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py"), "--check"], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


# the pages docs/generate.py writes show signatures, not programs; every other page's Python is a program
GENERATED = {"api.md", "cli.md", "configuration.md"}
SNIPPET = re.compile(r"^( *)```python\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)


def snippets() -> list[tuple[str, str]]:
    pages = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in GENERATED)]
    found = []
    for page in pages:
        for number, match in enumerate(SNIPPET.finditer(page.read_text()), 1):
            code = textwrap.dedent("".join(line[len(match[1]):] + "\n" for line in match[2].splitlines()))
            found.append((f"{page.relative_to(ROOT)}#{number}", code))
    return found


def test_the_docs_have_python_snippets_to_run() -> None:
    names = [name for name, _ in snippets()]
    assert "README.md#1" in names and any(name.startswith("docs/python.md#") for name in names)


@pytest.mark.parametrize(("name", "code"), snippets(), ids=[name for name, _ in snippets()])
def test_every_python_snippet_in_the_docs_runs_as_a_script(name: str, code: str, tmp_path: Path) -> None:
    """Copied into a file of its own and run in an empty folder, as a reader would."""
    script = tmp_path / "snippet.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, f"{name} failed:\n{result.stderr[-3000:]}"

"""The README's mock-scripting example works as written: through guardstream the stream stops before the key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import RunningProxy

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_mock_example_prints_what_the_readme_shows(proxy: RunningProxy) -> None:
    section = README.read_text(encoding="utf-8").split("## Scripting the mock model", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, flags=re.S)
    shown = re.search(r"```text\n(.*?)```", section, flags=re.S)
    assert snippet is not None and shown is not None
    code = snippet.group(1).replace("http://127.0.0.1:8080", proxy.url)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert [line.rstrip() for line in result.stdout.splitlines()] == shown.group(1).splitlines()
    assert "AKIA" not in result.stdout

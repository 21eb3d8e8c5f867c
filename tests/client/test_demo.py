"""`tensorrank demo`, small: the whole path from starting a server to stopping it."""

from __future__ import annotations

import re
from pathlib import Path

from tests.client.conftest import tensorrank


def test_demo_runs_and_cleans_up() -> None:
    res = tensorrank("demo", "--docs", "1500", "--device", "cpu", timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    m = re.search(r"with its data in (\S+)", out)
    assert m and not Path(m.group(1)).exists(), out  # nothing left behind
    assert "fed 1,500 operations" in out and "1,500 ok, 0 failed" in out
    assert out.count("\nquery: ") == 3
    assert re.search(r"  1\. \d\.\d{4}  id:news:news::\d+ +science: ", out), out
    assert "server stopped (SIGTERM, exit status 0)" in out
    assert "1,500 documents" in res.stderr  # the progress, on stderr

"""The `tensorrank` command line, run as a user runs it: a separate process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared_data import shared

REPO = Path(__file__).resolve().parents[2]


def tensorrank(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("name", ["simple.onnx", "dummy_transformer.onnx", "mnist_softmax.onnx"])
def test_inspect_a_vespa_model(name: str) -> None:
    path = shared("vespa-models") / name
    res = tensorrank("inspect", str(path))
    out = res.stdout
    if name == "dummy_transformer.onnx" and res.returncode != 0:
        # [batch, tokens]: 'tokens' has no size without a binding; if inspect cannot size it, it says so
        assert "conversion failed" in out and "dimension 'tokens' of input 'input_ids' has no size" in out, (
            out
        )
    else:
        assert res.returncode == 0, out + res.stderr
        assert re.search(r"^program: \d+ nodes, \d+ constant bytes$", out, re.M), out
    lines = out.splitlines()
    assert lines[0].startswith(f"model: {name}")
    assert "inputs:" in lines and "outputs:" in lines
    assert re.search(r"^ops: (\w+ x\d+)(, \w+ x\d+)*$", out, re.M), out
    if name == "simple.onnx":
        assert "  query_tensor: FLOAT[1, 4]" in lines and "  output: FLOAT[1, 1]" in lines
        assert "ops: MatMul x1, Add x1" in lines
    if name == "mnist_softmax.onnx":
        # the -1 batch axis: one row per document
        assert "  input  attribute(Placeholder:0) float32[1, 784]" in lines, out


@pytest.mark.parametrize("content", [b"", b"\x08\x07\x12\xff\xff garbage"], ids=["empty", "garbage"])
def test_inspect_a_broken_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    res = tensorrank("inspect", str(path))
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert "error" in text and "broken.onnx" in text, text
    assert "Traceback" not in text, text


def test_inspect_a_missing_file(tmp_path: Path) -> None:
    res = tensorrank("inspect", str(tmp_path / "nope.onnx"))
    assert res.returncode != 0
    assert "file not found" in res.stdout + res.stderr and "Traceback" not in res.stderr


def test_conformance_filter() -> None:
    res = tensorrank("conformance", "--filter", "test_abs")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.strip().splitlines()
    summary = re.fullmatch(
        r"conformance: (\d+) passed, (\d+) failed, (\d+) unsupported, (\d+) total", lines[-1]
    )
    assert summary, lines[-1]
    passed, failed, unsupported, total = (int(g) for g in summary.groups())
    assert passed + failed + unsupported == total and total >= 1
    # one line per op before it, with counts that add up to the total
    per_op = [
        re.fullmatch(r"(\S+): (\d+)/(\d+) passed(, \d+ failed)?(, \d+ unsupported)?", line)
        for line in lines[:-1]
    ]
    assert per_op and all(per_op), lines
    assert sum(int(m.group(3)) for m in per_op if m) == total
    assert any(m.group(1) == "Abs" for m in per_op if m)

"""A real `tensorrank serve` of the bundled example (examples/news) for the client's tests."""

from __future__ import annotations

import importlib.util
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "news"


def tensorrank(*args: str, timeout: float = 120, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a separate process, stderr not a terminal."""
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, input=stdin, check=False)


@pytest.fixture(scope="session")
def corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("examples_make_corpus", ROOT / "examples" / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's HOST:PORT; it is stopped with SIGTERM afterwards and must exit 0."""
    data = tmp_path_factory.mktemp("data")
    log = data.parent / f"{data.name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", str(APP), "--data", str(data),
                                 "--port", "0", "--metrics-port", "0", "--device", "cpu"],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not (m := re.search(r"listening on (\S+:\d+)", log.read_text())):
                assert proc.poll() is None, f"the server exited ({proc.returncode}):\n{log.read_text()}"
                assert time.monotonic() < deadline, f"the server did not start:\n{log.read_text()}"
                time.sleep(0.05)
            yield m.group(1)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
    assert code == 0, log.read_text()

"""`tensorrank check APP_DIR`, run as a user runs it: in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .helpers import strange_names_model, write_app

REPO = Path(__file__).resolve().parents[2]

SCHEMA = """schema news {
  document news {
    field embedding type tensor<float>(x[4]) { indexing: attribute }
    field popularity type float { indexing: attribute }
    field title type string { indexing: summary }
  }
  rank-profile shared {
    function scaled(t) { expression: t * 2 }
  }
  rank-profile ml inherits shared {
    inputs {
      query(q) tensor<float>(x[4])
      query(w) double: 0.5
    }
    function input_0() { expression: tensor<float>(d0[2])(attribute(embedding){x:d0}) }
    function input_1() { expression: tensor<float>(d0[2])(query(q){x:(d0 + 2)}) }
    first-phase { expression: sum(onnx(strange_names).foo_bar) + query(w) * attribute(popularity) }
    second-phase { rerank-count: 50  expression: scaled(firstPhase) }
    match-features { onnx(strange_names)._baz_0 }
  }
}
"""


def check(app: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", "check", str(app)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_check_describes_a_valid_package(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"news": SCHEMA}, {"strange_names.onnx": strange_names_model()})
    out = check(app)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "schema news: 3 fields"
    assert "  field embedding: tensor<float>(x[4]) (attribute)" in lines
    assert "  field title: string (summary)" in lines
    assert "  rank-profile shared: no first-phase, only for other profiles to inherit" in lines
    profile = next(line for line in lines if line.startswith("  rank-profile ml: program of "))
    assert int(profile.split("program of ")[1].split()[0]) > 0
    for want in ("    input query(q) tensor<float>(x[4])",
                 "    input query(w) double (has default)",
                 "    reads attribute(embedding) tensor<float>(x[4])",
                 "    reads attribute(popularity) float",
                 "    model models/strange_names.onnx",
                 "    match-feature onnx(strange_names)._baz_0: tensor<float>(d0[2])",
                 "    second-phase over the best 50"):
        assert want in lines, (want, lines)
    assert lines[-1] == f"{app}: ok"
    assert out.stderr == ""


def test_check_reports_a_located_error(tmp_path: Path) -> None:
    broken = SCHEMA.replace("function input_1()", "function input_one()")
    app = write_app(tmp_path / "app", {"news": broken}, {"strange_names.onnx": strange_names_model()})
    out = check(app)
    assert out.returncode == 1
    # what did compile is still described; the broken profile is not, and nothing says ok
    assert "  rank-profile shared: no first-phase, only for other profiles to inherit" in out.stdout
    assert "rank-profile ml" not in out.stdout and ": ok" not in out.stdout
    assert out.stderr.splitlines()[-1] == f"{app}: 1 error"
    # the error says where, relative to where the user ran the command, and what
    assert out.stderr.startswith(f"error: {app}/schemas/news.sd:17:35: rank profile 'ml': Model refers input "
                                 "'input/1' of type tensor<float>(d0[2]) but this function is not present in rank "
                                 "profile 'ml' (define function input_1())"), out.stderr


def test_check_syntax_error(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"news": SCHEMA.replace("rerank-count: 50", "rerank-count: 5x")})
    out = check(app)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [f"error: {app}/schemas/news.sd:18:34: rank profile 'ml': rerank-count must be "
                                       "a whole number, got '5x'", f"{app}: 1 error"]


def test_check_not_a_package(tmp_path: Path) -> None:
    out = check(tmp_path / "missing")
    assert out.returncode == 1
    assert "is not a directory" in out.stderr
    (tmp_path / "empty").mkdir()
    out = check(tmp_path / "empty")
    assert out.returncode == 1
    assert "has no schemas/*.sd files" in out.stderr

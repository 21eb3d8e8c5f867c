"""A passed deadline stops the GPU backend between steps, as it stops the numpy backend
between blocks (run here through the backend's host emulation)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from gpu_engine.backend import CupyBackend
from tensor_ir import build
from tensor_ir.cancel import DeadlineExceeded, deadline
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Role
from tensor_ir.program import Program


def test_a_passed_deadline_stops_the_gpu_program() -> None:
    x = build.input_("x", Role.ATTRIBUTE, (8,), CellType.FLOAT32)
    program = Program({"y": build.reduce(build.map_("exp", x), "sum", None, False)})
    compiled = CupyBackend.emulated().compile(program)
    feeds = {"x": np.ones((4, 8), np.float32)}
    with deadline(time.monotonic() - 1), pytest.raises(DeadlineExceeded):
        compiled.run(feeds, 4)
    with deadline(time.monotonic() + 60):
        np.testing.assert_allclose(np.asarray(compiled.run(feeds, 4)["y"]), np.full(4, 8 * np.e), rtol=1e-6)

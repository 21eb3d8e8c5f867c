"""One error root and one status table: every exception class of ours derives from
TensorRankError, and every one of those has its own row in server.status.STATUS."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import grpc
import numpy as np
import pytest

import cpu_fallback
import gpu_engine
import server
import tensor_ir
from server.status import STATUS, status_of
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.errors import DocumentValueError, EvaluationError, TensorRankError
from tensor_ir.ir import Role
from tensor_ir.program import Program

PACKAGES = (tensor_ir, cpu_fallback, gpu_engine, server)


def our_exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for package in PACKAGES:
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == module.__name__ and issubclass(cls, BaseException):
                    found.append(cls)
    return found


def subclasses(root: type) -> set[type]:
    out: set[type] = set()
    todo = [root]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in out:
                out.add(sub)
                todo.append(sub)
    return out


def test_every_error_class_derives_from_the_root() -> None:
    classes = our_exception_classes()
    assert len(classes) >= 20, classes
    strays = [f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, TensorRankError)]
    assert not strays, f"exception classes outside the TensorRankError tree: {strays}"


def test_every_error_class_has_its_own_row() -> None:
    our_exception_classes()  # import every module, so that every subclass exists
    missing = sorted(f"{c.__module__}.{c.__qualname__}" for c in subclasses(TensorRankError) | {TensorRankError}
                     if c not in STATUS and c.__module__.split(".")[0] in {p.__name__ for p in PACKAGES})
    assert not missing, f"no row in server.status.STATUS for {missing}"


def _gather_program(role: Role) -> Program:
    idx = build.input_("i", role, (), CellType.INT64)
    return Program({"y": build.gather(build.constant(np.arange(4, dtype=np.float32)), idx, 0, label="pick")})


@pytest.mark.parametrize(("role", "kind", "code"), [
    (Role.QUERY, EvaluationError, grpc.StatusCode.INVALID_ARGUMENT),
    (Role.ATTRIBUTE, DocumentValueError, grpc.StatusCode.FAILED_PRECONDITION),
])
def test_an_out_of_range_gather_index_is_not_internal(role: Role, kind: type[Exception],
                                                      code: grpc.StatusCode) -> None:
    from cpu_fallback import NumpyBackend

    program = _gather_program(role)
    value = np.array(7, np.int64) if role is Role.QUERY else np.array([1, 7], np.int64)
    with pytest.raises(kind) as info:
        NumpyBackend().run(program, {"i": value}, 2)
    got, message = status_of(info.value, "Rank")
    assert got == code
    assert "gather node 'pick'" in message and "index 7 is out of range for an axis of size 4" in message

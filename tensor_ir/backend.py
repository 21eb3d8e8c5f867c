"""The interface both backends implement. Code above the engines picks one: the server's
composition root (server/cli_serve.py), the conformance command and the benchmarks."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.passes.monotone_tail import HEAD_INPUT
from tensor_ir.program import Program
from tensor_ir.topk import block_candidates


class CompiledProgram(abc.ABC):
    """A program prepared for one backend: constants resident, kernels ready."""

    program: Program

    @abc.abstractmethod
    def run(self, inputs: Mapping[str, Any], n_docs: int) -> dict[str, Any]:
        """Evaluate for `n_docs` documents.

        Attribute inputs have shape [n_docs, *shape]; query and constant inputs their own
        shape. Every output comes back with a leading document axis of n_docs.
        """


class Backend(abc.ABC):
    name: str

    @abc.abstractmethod
    def compile(self, program: Program) -> CompiledProgram: ...

    @abc.abstractmethod
    def asarray(self, value: npt.ArrayLike) -> Any:
        """Move a host array to the backend's device."""

    @abc.abstractmethod
    def to_host(self, value: Any) -> npt.NDArray[Any]:
        """Copy a device array back to a numpy array."""

    def memory_available(self) -> int | None:
        """Bytes the device can still allocate, where the backend can tell (None: host memory)."""
        return None

    def candidates(self, scores: Any, k: int, live: npt.NDArray[np.bool_] | None = None
                   ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Positions and scores, on the host, of at least the k best scores (every tie at
        the k-th value included, so the caller can break ties by document id), among the
        positions `live` allows. NaN counts as the lowest score."""
        return select_candidates(np, np.asarray(self.to_host(scores)), k, live)

    def candidates_after(self, head: Any, tail: CompiledProgram, feeds: Mapping[str, Any], k: int,
                         live: npt.NDArray[np.bool_] | None = None
                         ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """`candidates` of the scores tail(head), for a head and a non-decreasing tail from
        split_monotone_tail (`feeds`: the tail's query inputs). This default scores every
        document; a backend that can do better overrides it (see `selects_through_tail`)."""
        return self.candidates(run_tail(tail, feeds, head), k, live)

    @property
    def selects_through_tail(self) -> bool:
        """Whether `candidates_after` saves work over scoring every document: only then
        does ranking split the first phase into head and tail."""
        return type(self).candidates_after is not Backend.candidates_after

    def run(self, program: Program, inputs: Mapping[str, Any], n_docs: int) -> dict[str, npt.NDArray[Any]]:
        """Compile, run and copy back: a convenience for tests and one-off evaluation."""
        out = self.compile(program).run(inputs, n_docs)
        return {k: np.asarray(self.to_host(v)) for k, v in out.items()}


def run_tail(tail: CompiledProgram, feeds: Mapping[str, Any], head: Any) -> Any:
    """The tail program's scores for head values, one per document."""
    n = int(head.shape[0])
    (output,) = tail.program.outputs
    values = head.reshape(n, *tail.program.inputs[HEAD_INPUT].shape)
    return tail.run({**feeds, HEAD_INPUT: values}, n)[output].reshape(n)


def select_candidates(xp: Any, scores: Any, k: int, live: Any = None
                      ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """`Backend.candidates` for an array module `xp` (numpy, or cupy on the device): the
    partition runs where the scores are; only the candidates cross to the host."""
    values = scores.reshape(-1)
    n = int(values.shape[0])
    to_host = getattr(xp, "asnumpy", np.asarray)
    if k <= 0 or n == 0:
        empty = xp.zeros(0, dtype=np.int64)
        return np.asarray(to_host(empty), dtype=np.int64), np.zeros(0, dtype=np.float64)
    if xp is np and live is None:
        found = block_candidates(values, k)
        if found is not None:
            return found
    if live is None and k < n and not bool(xp.isnan(values).any()):
        # the common case, in two passes over the scores: the k-th best value, then every
        # score at least as good (ties included)
        kth = xp.partition(values, n - k)[n - k]
        pos = xp.nonzero(values >= kth)[0]
    else:
        key = values.astype(np.float64)
        key = xp.where(xp.isnan(key), -np.inf, key)  # NaN ranks lowest
        pos = xp.arange(n) if live is None else xp.nonzero(live)[0]
        if live is not None:
            key = key[pos]
        if k < key.shape[0]:
            kth = xp.partition(-key, k - 1)[k - 1]
            pos = pos[xp.nonzero(-key <= kth)[0]]
    return np.asarray(to_host(pos), dtype=np.int64), np.asarray(to_host(values[pos]), dtype=np.float64)

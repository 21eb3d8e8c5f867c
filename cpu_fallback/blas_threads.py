"""One BLAS thread per evaluator worker while blocks are evaluated in parallel.

The blocked evaluator runs its document blocks on several Python threads (numpy releases the
GIL in matmul and in ufunc loops), so the elementwise passes run in parallel too, not only the
GEMMs. BLAS must then use one thread per call, or the workers' GEMMs would oversubscribe the
cores. threadpoolctl is how to set that portably; without it the evaluator stays on one worker
and leaves BLAS's own threading alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_active = 0  # parallel evaluations in flight: the first sets BLAS to one thread, the last restores it
_restore: Any = None
_controller: Any = None
_unavailable = False


def _get_controller() -> Any:
    global _controller, _unavailable
    if _controller is None and not _unavailable:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _unavailable = True
            return None
        _controller = ThreadpoolController()  # inspects the loaded libraries once, not per query
    return _controller


def available() -> bool:
    with _lock:
        return _get_controller() is not None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    global _active, _restore
    with _lock:
        controller = _get_controller()
        if controller is not None and _active == 0:
            _restore = controller.limit(limits=1, user_api="blas")
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _restore is not None:
                _restore.restore_original_limits()
                _restore = None

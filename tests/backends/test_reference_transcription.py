"""The GPU backend transcribes parts of tensor_ir.reference (its array steps in numpy-like
CuPy calls, its arithmetic in C++): a change to those reference definitions must reach
the transcription too. This test names any that changed since."""

from __future__ import annotations

from gpu_engine.backend import TRANSCRIBED_REFERENCE, reference_digests


def test_transcribed_reference_definitions_are_unchanged() -> None:
    now = reference_digests()
    changed = sorted(k for k in now if TRANSCRIBED_REFERENCE.get(k) != now[k])
    assert not changed, (
        f"tensor_ir.reference changed in {', '.join(changed)}: update the matching code in "
        "gpu_engine/backend.py (array steps) or gpu_engine/render.py (kernel arithmetic), then record "
        "the new digests in gpu_engine.backend.TRANSCRIBED_REFERENCE (print them with reference_digests())"
    )

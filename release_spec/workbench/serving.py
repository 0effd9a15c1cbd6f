"""Serving the models in simulation: the live pool batch by batch, memory, image summaries.

What the release run's stability, rollout and monitoring steps measure on
the running models (`release_spec.workbench.pipeline.ReleaseRun`): each
model's predictions and per-request latency on the live pool, taking turns
batch by batch (`serve`); the process's resident memory for the soak
(`rss_mb`); the scalar image summaries the drift monitors compare
(`image_summaries`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from release_spec.workbench.data import FloatArray, IntArray
from release_spec.workbench.training import predictor

__all__ = ["image_summaries", "rss_mb", "serve"]


def rss_mb() -> float:
    """Resident memory of this process, in MB (the soak samples it)."""
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def serve(
    models: Sequence[Any], x: FloatArray, batch_size: int
) -> list[tuple[IntArray, npt.NDArray[np.float64]]]:
    """Per model: predicted labels and, per request, its batch's wall time / the batch size.

    The models take turns batch by batch, so a load on the machine slows them alike:
    the rollout judges the canary's slow requests against the baseline's.
    """
    predicts = [predictor(m) for m in models]
    out = [(np.empty(len(x), np.int64), np.empty(len(x), np.float64)) for _ in models]
    for start in range(0, len(x), batch_size):
        for predict, (labels, latency) in zip(predicts, out, strict=True):
            t0 = time.perf_counter()
            probs = predict(x[start : start + batch_size])
            n = len(probs)
            latency[start : start + n] = (time.perf_counter() - t0) * 1000.0 / n
            labels[start : start + n] = np.argmax(probs, axis=1)
    return out


def image_summaries(x: FloatArray) -> dict[str, list[float]]:
    """Scalar summaries of 28 x 28 images, the features the drift monitors compare."""
    img = np.asarray(x, np.float64).reshape(-1, 28, 28)
    mass = img.sum(axis=(1, 2)) + 1e-9
    rows, cols = np.arange(28.0)[None, :, None], np.arange(28.0)[None, None, :]
    r = (img * rows).sum(axis=(1, 2)) / mass
    c = (img * cols).sum(axis=(1, 2)) / mass
    spread = np.sqrt(
        (img * ((rows - r[:, None, None]) ** 2 + (cols - c[:, None, None]) ** 2)).sum(axis=(1, 2))
        / mass
    )
    return {
        "mean_intensity": img.mean(axis=(1, 2)).tolist(),
        "ink_fraction": (img > 0.5).mean(axis=(1, 2)).tolist(),
        "centre_row": r.tolist(),
        "centre_col": c.tolist(),
        "ink_spread": spread.tolist(),
    }

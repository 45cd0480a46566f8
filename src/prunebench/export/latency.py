"""onnxruntime latency of an exported file: median wall-clock seconds of one run on a fixed batch, fixed
threads (intra-op ``threads``, one inter-op thread, sequential execution), after warm-up runs."""
from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def onnx_latency(path: str | Path, input_shape: Sequence[int], *, threads: int = 1, warmup: int = 5,
                 repeats: int = 30) -> float:
    """Median seconds of ``session.run`` on zeros of ``input_shape`` (batch first)."""
    from prunebench.export.formats.onnx import INPUT, runtime

    session = runtime()(Path(path), threads=threads)
    x = np.zeros(tuple(input_shape), dtype=np.float32)
    for _ in range(int(warmup)):
        session.run(None, {INPUT: x})
    times = []
    for _ in range(int(repeats)):
        t0 = time.perf_counter()
        session.run(None, {INPUT: x})
        times.append(time.perf_counter() - t0)
    return statistics.median(times)

"""JSON of run artifacts: numpy values and non-finite numbers made strict JSON. (Atomic writes: data/files.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def finite(o):
    """NaN/inf -> None (null) and numpy -> Python, recursively: strict JSON."""
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite(v) for v in o]
    if isinstance(o, np.ndarray):
        return finite(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, Path):
        return str(o)
    return o

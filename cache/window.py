"""Windowed SimCC rows: keep the bins around the peak, summarise the rest by one number.

A teacher's SimCC row over B student bins is stored as log-probabilities (log-softmax at T=1):
  start  int16    first bin of a window of w bins, centred on the argmax, clamped into [0, B - w]
  values float16  (w,) log-probabilities of the bins start .. start + w - 1
  tail   float16  log of the MEAN probability of the B - w bins outside the window
Reconstruction fills every outside bin with the tail, so the total mass of the row is preserved
(window mass + (B - w) * exp(tail) = 1 up to fp16 rounding) and softmax(row / T) at any
temperature sees the right amount of probability away from the peak. With w == B the window is
the whole row (lossless up to fp16) and the tail is unused.

Because log-softmax only subtracts a per-row constant, softmax(logits / T) == softmax(logp / T):
the cache may store log-probabilities and the student still distils at any temperature.

Pure numpy, no I/O.
"""
from __future__ import annotations

import numpy as np

# Tail used when the outside mass underflows (w == B, or -inf logits outside the window). It is
# far below any probability that matters at the temperatures used in distillation (exp(-69) ~ 1e-30
# per bin) yet finite, so fp16 storage and KL arithmetic never meet -inf - -inf.
TAIL_FLOOR = float(np.log(1e-30))
# Most negative finite float16: log-probabilities below it are clipped rather than becoming -inf.
FP16_LOWEST = float(np.finfo(np.float16).min)


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable log-softmax in float64 (a row of -inf stays -inf, never NaN)."""
    x = np.asarray(logits, dtype=np.float64)
    peak = np.max(x, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    shifted = x - peak
    with np.errstate(divide='ignore', invalid='ignore'):
        log_sum = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        return np.where(np.isneginf(log_sum), -np.inf, shifted - log_sum)


def window_starts(argmax: np.ndarray, w: int, bins: int) -> np.ndarray:
    """First bin of a w-wide window centred on `argmax`, clamped so the window lies inside [0, bins)."""
    return np.clip(np.asarray(argmax) - w // 2, 0, bins - w)


def encode_window(logits: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (..., B) of logits -> (start int16 (...), values float16 (..., w), tail float16 (...)).

    Computed in float32 (the results are stored as float16); the outside mass is summed over the
    outside bins themselves, never as 1 - window mass, so a tiny tail keeps its digits.
    """
    logits = np.asarray(logits, dtype=np.float32)
    bins = logits.shape[-1]
    if not 1 <= w <= bins:
        raise ValueError(f'window width {w} must be in [1, {bins}] (the number of bins)')
    if bins > np.iinfo(np.int16).max:
        raise ValueError(f'{bins} bins do not fit an int16 window start')
    if np.isnan(logits).any() or np.isposinf(logits).any():
        raise ValueError('logits contain NaN or +inf')
    peak = np.max(logits, axis=-1, keepdims=True)
    peak[~np.isfinite(peak)] = 0.0  # a row of -inf: keep it -inf rather than NaN
    shifted = logits - peak
    prob = np.exp(shifted)  # unnormalised, in [0, 1]
    total = np.sum(prob, axis=-1)
    total[total == 0] = 1.0
    log_total = np.log(total)

    start = window_starts(np.argmax(logits, axis=-1), w, bins)
    columns = start[..., None] + np.arange(w)
    values = np.take_along_axis(shifted, columns, axis=-1) - log_total[..., None]
    if w < bins:
        grid = np.arange(bins)
        outside = (grid < start[..., None]) | (grid >= start[..., None] + w)
        outside_sum = np.sum(prob, axis=-1, where=outside)
        with np.errstate(divide='ignore'):
            tail = np.log(outside_sum) - log_total - np.float32(np.log(bins - w))
    else:
        tail = np.full(logits.shape[:-1], -np.inf, np.float32)
    tail = np.maximum(tail, TAIL_FLOOR)
    values = np.maximum(values, FP16_LOWEST)
    return start.astype(np.int16), values.astype(np.float16), tail.astype(np.float16)


def reconstruct(start: np.ndarray, values: np.ndarray, tail: np.ndarray, bins: int) -> np.ndarray:
    """Inverse of encode_window: float32 log-probabilities (..., bins).

    Not renormalised: the stored numbers are returned as they are, so the mass check in the tests
    measures the encoding itself (softmax at any temperature renormalises anyway).
    """
    values = np.asarray(values)
    w = values.shape[-1]
    if not 1 <= w <= bins:
        raise ValueError(f'window width {w} must be in [1, {bins}] (the number of bins)')
    start = np.asarray(start).astype(np.int64)
    if start.size and (start.min() < 0 or start.max() > bins - w):
        raise ValueError(f'window start outside [0, {bins - w}]')
    out = np.broadcast_to(np.asarray(tail, dtype=np.float32)[..., None],
                          values.shape[:-1] + (bins,)).copy()
    np.put_along_axis(out, start[..., None] + np.arange(w), values.astype(np.float32), axis=-1)
    return out


def kl_at_temperature(full_logits: np.ndarray, recon_logp: np.ndarray, temperature: float) -> np.ndarray:
    """KL(softmax(full / T) || softmax(recon / T)) per row (...,), in nats, float64."""
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    log_p = log_softmax(np.asarray(full_logits, np.float64) / temperature)
    log_q = log_softmax(np.asarray(recon_logp, np.float64) / temperature)
    p = np.exp(log_p)
    # bins with p == 0 contribute nothing, whatever q is (0 * log 0 = 0, never 0 * inf)
    with np.errstate(invalid='ignore'):
        terms = np.where(p > 0, p * (log_p - log_q), 0.0)
    return np.sum(terms, axis=-1)


def argmax_agreement(full_logits: np.ndarray, recon_logp: np.ndarray) -> np.ndarray:
    """Per row (...,): True where the reconstructed row peaks at the same bin as the full row."""
    return np.argmax(full_logits, axis=-1) == np.argmax(recon_logp, axis=-1)

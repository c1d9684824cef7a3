"""Windowed SimCC rows: keep the bins around the peak exactly, summarise the rest by block means.

A teacher's SimCC row over B student bins is stored as log-probabilities (log-softmax at T=1):
  start  int16    first bin of a window of w bins, centred on the argmax, clamped into [0, B - w]
  values float16  (w,) log-probabilities of the bins start .. start + w - 1
  tail   float16  (nb,) per block of ceil(B / nb) bins: log of the MEAN probability of the block's
                  seen bins outside the window (nb = 1: one number for the whole outside)
  seen   int16    (2,) [lo, hi): the bins the teacher's crop reaches. A teacher with another input
                  size sees its own native crop, which may cover only part of the student's crop;
                  the bins it does not reach carry probability 0 (logit -inf) and get no tail mass.
Reconstruction fills each outside bin with its block's tail and the unseen bins with ~0, so the
mass of the row is preserved (window mass + sum over blocks of count x exp(tail) = 1 up to fp16
rounding) and lands roughly where the teacher put it: softmax(row / T) at any temperature sees the
right amount of probability away from the peak. With w == B the window is the whole row (lossless
up to fp16) and the tail is unused.

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


def block_size(bins: int, n_blocks: int) -> int:
    """Bins per tail block: blocks of this size tile [0, bins) (the last one may be shorter)."""
    if not 1 <= n_blocks <= bins:
        raise ValueError(f'tail blocks {n_blocks} must be in [1, {bins}] (the number of bins)')
    return -(-bins // n_blocks)


def seen_range(logits: np.ndarray) -> np.ndarray:
    """(..., 2) int [lo, hi) of the finite bins of each row (the teacher's crop); [0, B) for a row
    with none (nothing to restrict)."""
    seen = np.isfinite(logits)
    bins = logits.shape[-1]
    lo = np.argmax(seen, axis=-1)
    hi = bins - np.argmax(seen[..., ::-1], axis=-1)
    none = ~seen.any(axis=-1)
    return np.stack([np.where(none, 0, lo), np.where(none, bins, hi)], axis=-1)


def encode_window(logits: np.ndarray, w: int, tail_blocks: int = 1
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows (..., B) of logits (-inf = a bin the teacher does not see) ->
    (start int16 (...), values float16 (..., w), tail float16 (..., nb), seen int16 (..., 2)).

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
    bs = block_size(bins, tail_blocks)
    seen = seen_range(logits)
    peak = np.max(logits, axis=-1, keepdims=True)
    peak[~np.isfinite(peak)] = 0.0  # a row of -inf: keep it -inf rather than NaN
    shifted = logits - peak
    prob = np.exp(shifted)  # unnormalised, in [0, 1]; 0 where unseen
    total = np.sum(prob, axis=-1)
    total[total == 0] = 1.0
    log_total = np.log(total)

    start = window_starts(np.argmax(logits, axis=-1), w, bins)
    columns = start[..., None] + np.arange(w)
    values = np.take_along_axis(shifted, columns, axis=-1) - log_total[..., None]
    grid = np.arange(bins)
    outside = ((grid < start[..., None]) | (grid >= start[..., None] + w)) \
        & (grid >= seen[..., :1]) & (grid < seen[..., 1:])
    pad = tail_blocks * bs - bins  # blocks tile a padded row; padding is never "outside"
    blocks = lambda a: np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, pad)]).reshape(a.shape[:-1] + (tail_blocks, bs))  # noqa: E731
    outside_sum = np.sum(blocks(np.where(outside, prob, 0.0)), axis=-1)
    outside_count = np.sum(blocks(outside.astype(np.float32)), axis=-1)
    with np.errstate(divide='ignore', invalid='ignore'):
        tail = np.log(outside_sum / outside_count) - log_total[..., None]
    tail = np.where(np.isfinite(tail), np.maximum(tail, TAIL_FLOOR), TAIL_FLOOR)
    values = np.maximum(values, FP16_LOWEST)
    return start.astype(np.int16), values.astype(np.float16), tail.astype(np.float16), seen.astype(np.int16)


def reconstruct(start: np.ndarray, values: np.ndarray, tail: np.ndarray, seen: np.ndarray,
                bins: int) -> np.ndarray:
    """Inverse of encode_window: float32 log-probabilities (..., bins); unseen bins ~ -inf
    (FP16_LOWEST, as the window stores them).

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
    tail = np.asarray(tail, dtype=np.float32)
    bs = block_size(bins, tail.shape[-1])
    out = np.repeat(tail, bs, axis=-1)[..., :bins].copy()
    np.put_along_axis(out, start[..., None] + np.arange(w), values.astype(np.float32), axis=-1)
    seen = np.asarray(seen).astype(np.int64)
    grid = np.arange(bins)
    out[(grid < seen[..., :1]) | (grid >= seen[..., 1:])] = FP16_LOWEST
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

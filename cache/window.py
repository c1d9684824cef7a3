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

Coded windows (levels > 0, the default since layout 4): the window holds uint8 codes instead of fp16
log-probabilities, c = round(levels * exp(CODE_EXPONENT * (logp - max logp))), delta-coded along the
bins (zigzag, so a small step either way is a small byte; the store's bit-shuffle + zstd then packs
them). The student learns from the rows sharpened by beta / T (10 for RTMPose at T = 1): a bin's
error there counts in proportion to its sharpened probability exp(10 * (logp - max)), so the step
in the log domain grows away from the peak (1 / (CODE_EXPONENT * c) per level) where the sharpened
row has no mass, and is finest at the peak. Bins whose code is 0 (far below the peak) join the
outside bins in the tail blocks, so the mass at T = 1 still lands where it was. The tail is stored
relative to the peak and the reconstructed row is renormalised (a coded row has no absolute level).

Rate-distortion codes (rd_lambda > 0; an option, not the configs' choice: at the same KL they trained
worse students, docs/results.md 'Cache rows'): rounding each bin to its nearest code
spends most of the bits on +-1 steps that follow the teacher's small wiggles. A trellis search
(Viterbi over the two levels around each bin's u, rounded down or up) instead picks, per row, the
codes that minimise bits + rd_lambda * distortion: bits from a fixed model of the zigzag deltas,
distortion the generalised KL at the sharpened rows, sum of p log(p / q) - p + q over the bins (p the
teacher's row sharpened by SHARPEN, q the coded one, both over p's normaliser; ~0.5 * p * (SHARPEN *
error)^2 near the peak, and q where a code adds mass the teacher does not have). The
decoder is unchanged: these are the same codes, chosen better (the same bytes give a lower KL).

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
# Coded windows: exp(CODE_EXPONENT * (logp - max)) is quantised. The fidelity that matters is at the
# rows sharpened by 10 (pipeline.models.kd_temperature); a step that is uniform in exp(5 * (logp - max))
# (the square root of the sharpened probability) spends the bits where the sharpened row's mass is,
# and 4 (a little flatter) measured best at a given size (docs/results.md, 'Cache rows').
CODE_EXPONENT = 4.0
MAX_LEVELS = 255
# Rate-distortion codes: the sharpening the KD loss applies to the stored rows (RTMPose's beta = 10 at
# train.temperature 1), where the distortion is weighed; the level a code-0 bin is taken at (it is
# reconstructed from the tail, which averages the bins below half a level); and the bits of a delta
# d under a two-sided geometric model fitted to the rounded codes' deltas (P(0) = 0.64, each further
# step 0.2 as likely as the one before). docs/results.md, 'Cache rows', measures the choice.
SHARPEN = 10.0
ZERO_CODE_LEVEL = 0.3
_DELTA_P0, _DELTA_RATIO = 0.64, 0.2
_MAX_DELTA = MAX_LEVELS + 1
_d = np.abs(np.arange(-_MAX_DELTA, _MAX_DELTA + 1))
DELTA_BITS = (-np.log2(np.where(_d == 0, _DELTA_P0, (1 - _DELTA_P0) / 2 * (1 - _DELTA_RATIO)
                                 * _DELTA_RATIO ** np.maximum(_d - 1, 0)))).astype(np.float32)


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


def zigzag_bytes(d: np.ndarray) -> np.ndarray:
    """Signed integers -> uint8, modulo 256, zigzag-mapped (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...): small
    magnitudes of either sign become small bytes."""
    d = (np.asarray(d, dtype=np.int16) + 128) % 256 - 128  # modulo 256, as a signed byte
    return (((d << 1) ^ (d >> 7)) & 0xFF).astype(np.uint8)


def zigzag_deltas(codes: np.ndarray) -> np.ndarray:
    """int codes (..., w) in [0, 255] -> uint8 (..., w): each code minus the one before it (the first
    minus 0), zigzag-mapped (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) modulo 256."""
    return zigzag_bytes(np.diff(np.asarray(codes, dtype=np.int16), axis=-1, prepend=0))


def unzigzag_bytes(stored: np.ndarray) -> np.ndarray:
    """Inverse of zigzag_bytes: uint8 -> the signed integers (int16) they hold, in [-128, 127]."""
    z = np.asarray(stored).astype(np.int16)
    return (z >> 1) ^ -(z & 1)


def undo_zigzag_deltas(stored: np.ndarray) -> np.ndarray:
    """Inverse of zigzag_deltas: uint8 (..., w) -> int16 codes (..., w)."""
    return np.cumsum(unzigzag_bytes(stored), axis=-1, dtype=np.int16) % 256


RD_BLOCK_ROWS = 2048  # rows searched at once: bounds the search's working memory (~30 arrays of n x 2 x rows)


def rd_codes(rel: np.ndarray, levels: int, rd_lambda: float) -> np.ndarray:
    """Rows (..., n) of log-probabilities relative to the row's peak (-inf: a bin the teacher does not
    see) -> int16 codes (..., n) minimising bits + rd_lambda * distortion per row (module docstring).
    Unseen bins get code 0."""
    rel = np.asarray(rel, dtype=np.float32)
    shape, n = rel.shape, rel.shape[-1]
    rel = rel.reshape(-1, n)
    blocks = [_rd_block(rel[i:i + RD_BLOCK_ROWS], levels, rd_lambda) for i in range(0, len(rel), RD_BLOCK_ROWS)]
    return (np.concatenate(blocks) if blocks else np.zeros(rel.shape, np.int16)).reshape(shape)


def _rd_block(rel: np.ndarray, levels: int, rd_lambda: float) -> np.ndarray:
    """rd_codes of (m, n) rows."""
    m, n = rel.shape
    seen = np.isfinite(rel)
    rel = np.where(seen, rel, -100.0)
    u = levels * np.exp(CODE_EXPONENT * rel)
    norm = np.maximum(np.exp(SHARPEN * rel).sum(-1, keepdims=True), 1e-30).T[:, None, :]
    # bins first and candidates before rows, so each step of the search works on contiguous rows
    floor = np.floor(u).astype(np.int32).T  # (n, m)
    cand = floor[:, None, :] + np.arange(2, dtype=np.int32)[:, None]  # (n, 2, m): u rounded down, up
    valid = (cand <= MAX_LEVELS) & (seen.T[:, None, :] | (cand == 0))
    # where each candidate puts the bin (relative to the peak); code 0 joins the tail, taken as the
    # bin itself when it lies below the zero code's level
    truth = rel.T[:, None, :]
    level = np.log(np.clip(cand, 1, MAX_LEVELS).astype(np.float32) / levels) / CODE_EXPONENT
    level = np.where(cand == 0, np.minimum(truth, np.log(ZERO_CODE_LEVEL / levels) / CODE_EXPONENT), level)
    # generalised KL of the sharpened rows, p log(p / q) - p + q per bin: it also charges the mass a
    # code puts where the teacher has none (a run of 1s through a sharp row's empty flank)
    p, q = np.exp(SHARPEN * truth) / norm, np.exp(SHARPEN * level) / norm
    cost = np.where(valid, float(rd_lambda) * (p * SHARPEN * (truth - level) - p + q), np.inf).astype(np.float32)
    # bits of the step from candidate a of bin i - 1 to candidate b of bin i: the delta is
    # floor_i - floor_(i-1) + b - a, so 3 values per bin cover the 4 pairs (invalid candidates cost inf)
    rise = np.diff(floor, axis=0)[:, None, :] + np.arange(-1, 2, dtype=np.int32)[:, None] + _MAX_DELTA
    pair_bits = DELTA_BITS[np.clip(rise, 0, 2 * _MAX_DELTA)]  # (n - 1, 3, m)
    total = cost[0] + DELTA_BITS[np.minimum(cand[0], _MAX_DELTA) + _MAX_DELTA]  # the first delta is from 0
    back = np.empty((n, 2, m), dtype=bool)  # the best previous candidate (0: down, 1: up) of each candidate
    for i in range(1, n):
        bits = pair_bits[i - 1]  # b - a = -1, 0, 1
        down_down, up_down = total[0] + bits[1], total[1] + bits[0]
        down_up, up_up = total[0] + bits[2], total[1] + bits[1]
        np.less(up_down, down_down, out=back[i, 0])
        np.less(up_up, down_up, out=back[i, 1])
        total = np.stack([np.minimum(down_down, up_down), np.minimum(down_up, up_up)]) + cost[i]
    codes = np.empty((n, m), dtype=np.int16)
    state = (total[1] < total[0]).astype(np.intp)
    rows = np.arange(m)
    for i in range(n - 1, -1, -1):
        codes[i] = cand[i, state, rows]
        state = back[i, state, rows].astype(np.intp)
    return codes.T


def check_coding(levels: int, rd_lambda: float = 0.0) -> None:
    """The encoding's settings: levels 0 (fp16 windows) or 1..MAX_LEVELS (codes); rd_lambda 0 (rounded
    codes) or > 0 with codes."""
    if not 0 <= levels <= MAX_LEVELS:
        raise ValueError(f'levels {levels} must be 0 (fp16 window) or in [1, {MAX_LEVELS}] (uint8 codes)')
    if rd_lambda < 0 or (rd_lambda and not levels):
        raise ValueError(f'rd_lambda {rd_lambda} must be 0, or > 0 with coded windows (levels > 0)')


def encode_window(logits: np.ndarray, w: int, tail_blocks: int = 1, levels: int = 0, rd_lambda: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows (..., B) of logits (-inf = a bin the teacher does not see) ->
    (start int16 (...), values (..., w), tail float16 (..., nb), seen int16 (..., 2)).

    levels 0: values are float16 log-probabilities and the tail is log-probabilities. levels > 0:
    values are uint8 zigzag deltas of the codes (module docstring), and the tail is relative to the
    row's peak; bins whose code is 0 count as outside the window. rd_lambda > 0 (coded only): the codes
    of each row are chosen by rd_codes instead of rounded.
    Computed in float32 (the results are stored as float16); the outside mass is summed over the
    outside bins themselves, never as 1 - window mass, so a tiny tail keeps its digits.
    """
    check_coding(levels, rd_lambda)
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
    if levels:
        rel = values + log_total[..., None]
        if rd_lambda:
            codes = rd_codes(rel, levels, rd_lambda)
        else:
            codes = np.rint(levels * np.exp(CODE_EXPONENT * rel)).astype(np.int16)
            codes[~np.isfinite(values)] = 0
        zero = np.zeros(outside.shape, dtype=bool)
        np.put_along_axis(zero, columns, codes == 0, axis=-1)
        outside |= zero & (grid >= seen[..., :1]) & (grid < seen[..., 1:])
        log_total = np.zeros_like(log_total)  # the tail relative to the peak
    pad = tail_blocks * bs - bins  # blocks tile a padded row; padding is never "outside"
    blocks = lambda a: np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, pad)]).reshape(a.shape[:-1] + (tail_blocks, bs))  # noqa: E731
    outside_sum = np.sum(blocks(np.where(outside, prob, 0.0)), axis=-1)
    outside_count = np.sum(blocks(outside.astype(np.float32)), axis=-1)
    with np.errstate(divide='ignore', invalid='ignore'):
        tail = np.log(outside_sum / outside_count) - log_total[..., None]
    tail = np.where(np.isfinite(tail), np.maximum(tail, TAIL_FLOOR), TAIL_FLOOR)
    if levels:
        return start.astype(np.int16), zigzag_deltas(codes), tail.astype(np.float16), seen.astype(np.int16)
    values = np.maximum(values, FP16_LOWEST)
    return start.astype(np.int16), values.astype(np.float16), tail.astype(np.float16), seen.astype(np.int16)


def reconstruct(start: np.ndarray, values: np.ndarray, tail: np.ndarray, seen: np.ndarray,
                bins: int, levels: int = 0) -> np.ndarray:
    """Inverse of encode_window: float32 log-probabilities (..., bins); unseen bins ~ -inf
    (FP16_LOWEST, as the window stores them).

    levels 0: not renormalised, the stored numbers are returned as they are, so the mass check in the
    tests measures the encoding itself (softmax at any temperature renormalises anyway). levels > 0:
    the codes and tail are relative to the peak, so the row is renormalised.
    """
    check_coding(levels)
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
    columns = start[..., None] + np.arange(w)
    if levels:
        codes = undo_zigzag_deltas(values)
        with np.errstate(divide='ignore'):
            coded = np.log(codes.astype(np.float32) / levels) / CODE_EXPONENT
        window = np.take_along_axis(out, columns, axis=-1)
        np.put_along_axis(out, columns, np.where(codes > 0, coded, window), axis=-1)
    else:
        np.put_along_axis(out, columns, values.astype(np.float32), axis=-1)
    seen = np.asarray(seen).astype(np.int64)
    grid = np.arange(bins)
    unseen = (grid < seen[..., :1]) | (grid >= seen[..., 1:])
    if levels:
        out -= log_sum_exp(np.where(unseen, -np.inf, out))
    out[unseen] = FP16_LOWEST
    return out


def log_sum_exp(logp: np.ndarray) -> np.ndarray:
    """log of the sum of exp over the last axis, keepdims, float32 (0 for a row of -inf)."""
    peak = np.max(logp, axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    total = np.sum(np.exp(logp - peak), axis=-1, keepdims=True)
    with np.errstate(divide='ignore'):
        return np.where(total > 0, peak + np.log(total), 0.0).astype(np.float32)


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

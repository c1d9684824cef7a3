import numpy as np
import pytest

from cache.window import (CODE_EXPONENT, DELTA_BITS, SHARPEN, TAIL_FLOOR, ZERO_CODE_LEVEL, argmax_agreement,
                          encode_window, kl_at_temperature, log_softmax, rd_codes, reconstruct, undo_zigzag_deltas,
                          unzigzag_bytes, window_starts, zigzag_bytes, zigzag_deltas)


def peaked_logits(rng, shape, bins, amplitude=12.0, sigma=4.0, noise=0.3):
    """Gaussian-shaped SimCC-like logits: one peak per row plus noise."""
    centres = rng.uniform(0, bins - 1, size=shape)
    grid = np.arange(bins)
    bumps = np.exp(-(grid - centres[..., None]) ** 2 / (2 * sigma ** 2))
    return (amplitude * bumps + noise * rng.standard_normal(shape + (bins,))).astype(np.float32)


def test_log_softmax_matches_definition_and_survives_minus_inf():
    x = np.array([[1.0, 2.0, 3.0], [-np.inf, 0.0, 0.0], [-np.inf, -np.inf, -np.inf]])
    out = log_softmax(x)
    np.testing.assert_allclose(out[0], x[0] - np.log(np.exp(x[0]).sum()))
    np.testing.assert_allclose(out[1], [-np.inf, np.log(0.5), np.log(0.5)])
    assert not np.isnan(out).any() and np.isneginf(out[2]).all()


def test_window_holds_exact_log_probs_around_the_argmax():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4, 40)).astype(np.float32)
    logits[0, 0, 17] = 10.0  # a known peak
    start, values, tail, seen = encode_window(logits, 8)
    assert start.dtype == np.int16 and values.dtype == np.float16 and tail.dtype == np.float16
    assert start.shape == (5, 4) and values.shape == (5, 4, 8) and tail.shape == (5, 4, 1)
    assert seen.dtype == np.int16 and seen.shape == (5, 4, 2) and (seen == [0, 40]).all()
    assert start[0, 0] == 17 - 4
    logp = log_softmax(logits)
    for idx in np.ndindex(5, 4):
        s = int(start[idx])
        assert s <= np.argmax(logits[idx]) < s + 8
        np.testing.assert_array_equal(values[idx], logp[idx][s:s + 8].astype(np.float16))


def test_window_is_clamped_at_both_edges():
    assert window_starts(np.array([0, 2, 50, 97, 99]), 8, 100).tolist() == [0, 0, 46, 92, 92]
    logits = np.full((2, 30), -1.0, np.float32)
    logits[0, 0] = 5.0
    logits[1, 29] = 5.0
    start, values, _, _ = encode_window(logits, 6)
    assert start.tolist() == [0, 24]
    assert np.argmax(values[0]) == 0 and np.argmax(values[1]) == 5


def test_tail_preserves_total_mass():
    rng = np.random.default_rng(1)
    logits = peaked_logits(rng, (50, 3), 96, amplitude=4.0, noise=1.0)  # plenty of mass outside
    w = 16
    start, values, tail, seen = encode_window(logits, w)
    recon = reconstruct(start, values, tail, seen, 96)
    np.testing.assert_allclose(np.exp(recon.astype(np.float64)).sum(-1), 1.0, atol=5e-3)
    # the tail carries exactly the outside mass (to fp16 precision)
    p = np.exp(log_softmax(logits))
    inside = np.zeros_like(p, dtype=bool)
    np.put_along_axis(inside, start[..., None].astype(int) + np.arange(w), True, axis=-1)
    outside_mass = np.where(inside, 0.0, p).sum(-1)
    assert outside_mass.min() > 0.02
    np.testing.assert_allclose(np.exp(tail[..., 0].astype(np.float64)) * (96 - w), outside_mass, rtol=2e-3)


def test_full_width_window_is_lossless():
    rng = np.random.default_rng(2)
    logits = peaked_logits(rng, (20, 3), 96)
    start, values, tail, seen = encode_window(logits, 96)
    assert (start == 0).all()
    recon = reconstruct(start, values, tail, seen, 96)
    np.testing.assert_allclose(recon, log_softmax(logits), atol=0.05, rtol=1e-3)  # fp16 rounding only
    assert kl_at_temperature(logits, recon, 1.0).max() < 1e-5


def test_kl_small_for_peaked_rows_and_decreasing_with_width():
    rng = np.random.default_rng(3)
    logits = peaked_logits(rng, (200, 3), 96)
    means = []
    for w in (4, 8, 16, 32, 64):
        recon = reconstruct(*encode_window(logits, w), 96)
        kl = kl_at_temperature(logits, recon, 1.0)
        assert np.all(kl >= -1e-9)
        means.append(kl.mean())
    assert all(a > b for a, b in zip(means, means[1:])), means
    assert means[-2] < 1e-3  # w = 32 covers a sigma-4 peak
    assert means[0] > 10 * means[-2]


def test_minus_inf_outside_gives_floor_tail_and_finite_kl():
    logits = np.full((1, 50), -np.inf, np.float32)
    logits[0, 20:25] = [1.0, 2.0, 3.0, 2.0, 1.0]
    start, values, tail, seen = encode_window(logits, 8)
    assert np.isfinite(tail).all() and float(tail[0, 0]) == pytest.approx(TAIL_FLOOR, abs=0.1)
    assert seen[0].tolist() == [20, 25]
    recon = reconstruct(start, values, tail, seen, 50)
    assert np.isfinite(kl_at_temperature(logits, recon, 1.0)).all()
    assert np.isfinite(kl_at_temperature(logits, recon, 0.5)).all()


def test_kl_known_value_and_temperature():
    full = np.log(np.array([[0.5, 0.5]]))
    other = np.log(np.array([[0.9, 0.1]]))
    expected = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)
    assert kl_at_temperature(full, other, 1.0)[0] == pytest.approx(expected)
    assert kl_at_temperature(full, full, 0.3)[0] == pytest.approx(0.0, abs=1e-12)
    # higher temperature flattens the second row, so the divergence shrinks
    assert kl_at_temperature(full, other, 4.0)[0] < expected
    with pytest.raises(ValueError):
        kl_at_temperature(full, other, 0.0)


def test_argmax_agreement_and_bad_widths():
    full = np.array([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]])
    recon = np.array([[0.0, 2.0, 1.0], [0.0, 0.5, 1.0]])
    assert argmax_agreement(full, recon).tolist() == [True, False]
    with pytest.raises(ValueError, match='window width'):
        encode_window(full, 4)
    with pytest.raises(ValueError, match='NaN'):
        encode_window(np.array([[np.nan, 1.0]]), 1)


def _with_unseen(logits, lo, hi):
    """Rows whose teacher crop reaches only bins [lo, hi): -inf elsewhere (as map_teacher_logits gives)."""
    out = logits.copy()
    out[..., :lo] = -np.inf
    out[..., hi:] = -np.inf
    return out


def test_seen_range_keeps_tail_mass_off_bins_the_teacher_cannot_see():
    rng = np.random.default_rng(4)
    logits = _with_unseen(peaked_logits(rng, (40, 3), 96, amplitude=3.0, noise=1.0), 10, 70)
    logits[:10, :, 12] = 6.0  # peaks by the edge of the seen range: their window covers unseen bins too
    start, values, tail, seen = encode_window(logits, 16, tail_blocks=1)
    assert (seen == [10, 70]).all()
    recon = reconstruct(start, values, tail, seen, 96)
    p = np.exp(recon.astype(np.float64))
    assert p[..., :10].max() == 0 and p[..., 70:].max() == 0  # no mass where the teacher sees nothing
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=5e-3)  # all of it lands on seen bins
    # the one tail number is the mean over the SEEN bins outside the window (a window near the edge
    # of the seen range may also cover unseen bins)
    full = np.exp(log_softmax(logits))
    inside = np.zeros_like(full, dtype=bool)
    np.put_along_axis(inside, start[..., None].astype(int) + np.arange(16), True, axis=-1)
    seen_outside = ~inside & np.isfinite(logits)
    assert (seen_outside.sum(-1) > 60 - 16).any()  # the case is exercised
    np.testing.assert_allclose(np.exp(tail[..., 0].astype(np.float64)) * seen_outside.sum(-1),
                               np.where(inside, 0, full).sum(-1), rtol=2e-3)


def test_block_tails_follow_the_outside_shape_and_shrink_the_kl():
    rng = np.random.default_rng(5)
    # a second, smaller bump far from the peak: one tail number smears it, blocks keep it in place
    logits = peaked_logits(rng, (100, 2), 96, amplitude=6.0, noise=0.2)
    far = np.where(np.argmax(logits, -1) < 48, 85, 10)
    logits += 4.0 * np.exp(-(np.arange(96) - far[..., None]) ** 2 / 8.0)
    kls = {b: kl_at_temperature(logits, reconstruct(*encode_window(logits, 16, b), 96), 1.0).mean()
           for b in (1, 6, 12, 24, 96)}
    assert kls[1] > kls[6] > kls[12] > kls[24] and kls[24] < kls[1] / 10, kls
    assert kls[96] < 1e-4  # one bin per block: exact up to fp16
    for b in (1, 6, 12, 24):  # every block layout preserves the mass
        rec = reconstruct(*encode_window(logits, 16, b), 96)
        np.testing.assert_allclose(np.exp(rec.astype(np.float64)).sum(-1), 1.0, atol=5e-3)


def test_blocks_tile_rows_that_do_not_divide_evenly():
    rng = np.random.default_rng(6)
    logits = _with_unseen(peaked_logits(rng, (30,), 50, amplitude=3.0, noise=1.0), 3, 47)
    start, values, tail, seen = encode_window(logits, 8, tail_blocks=7)  # blocks of 8, the last one 2 bins
    assert tail.shape == (30, 7)
    rec = reconstruct(start, values, tail, seen, 50)
    np.testing.assert_allclose(np.exp(rec.astype(np.float64)).sum(-1), 1.0, atol=5e-3)
    with pytest.raises(ValueError, match='tail blocks'):
        encode_window(logits, 8, tail_blocks=51)


def flat_logits(rng, shape, bins):
    """Rows like the demo teachers' (peak probability ~2x a uniform row's), whose sharpened (x10)
    distribution still spans most bins: what the coded windows are for."""
    return (0.8 * peaked_logits(rng, shape, bins, amplitude=1.0, sigma=bins / 6, noise=0.03)).astype(np.float32)


def test_zigzag_deltas_round_trip_every_code():
    codes = np.random.default_rng(0).integers(0, 256, (6, 300))
    codes[0] = np.arange(300) % 256  # every step, and the wrap from 255 to 0
    stored = zigzag_deltas(codes)
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(undo_zigzag_deltas(stored), codes)
    # a smooth row is small bytes: -1 -> 1, +1 -> 2
    np.testing.assert_array_equal(zigzag_deltas(np.array([5, 4, 5, 5])), [10, 1, 2, 0])
    # one byte holds each signed step in [-128, 127], and gives it back
    steps = np.arange(-128, 128)
    np.testing.assert_array_equal(unzigzag_bytes(zigzag_bytes(steps)), steps)
    assert sorted(zigzag_bytes(steps).tolist()) == list(range(256))


def test_coded_window_is_within_half_a_step_where_the_sharpened_row_has_mass():
    rng = np.random.default_rng(1)
    logits = flat_logits(rng, (40, 3), 96)
    levels = 32
    start, values, tail, seen = encode_window(logits, 96, 1, levels)
    assert values.dtype == np.uint8 and values.shape == (40, 3, 96) and tail.shape == (40, 3, 1)
    rec = reconstruct(start, values, tail, seen, 96, levels)
    logp = log_softmax(logits)
    np.testing.assert_allclose(np.exp(rec).sum(-1), 1.0, atol=1e-5)  # renormalised
    d = logp.max(-1, keepdims=True) - logp
    g = np.exp(-CODE_EXPONENT * d) * levels  # the unrounded code
    # up to the row's normaliser (a constant per row, estimated on the bins near the peak)
    top = g >= levels / 2
    shift = np.array([np.median((rec - logp)[i][top[i]]) for i in np.ndindex(40, 3)]).reshape(40, 3, 1)
    err = rec - logp - shift
    for lo in (levels / 2, 4):  # a code c is within log(c / (c - 0.5)) / a of the truth
        sel = g >= lo
        assert np.abs(err[sel]).max() <= np.log(lo / (lo - 0.5)) / CODE_EXPONENT + 2e-3
    # the fidelity the codes are made for: the rows sharpened by 10, and it improves with the levels
    kls = [kl_at_temperature(logits, reconstruct(*encode_window(logits, 96, 1, q), 96, q), 0.1).mean()
           for q in (8, 32, 128)]
    assert kls[0] > kls[1] > kls[2] and kls[1] < 1e-3


def test_coded_window_tail_keeps_the_far_mass_and_nothing_on_unseen_bins():
    rng = np.random.default_rng(2)
    logits = peaked_logits(rng, (30, 2), 64, amplitude=6.0, sigma=5.0)
    logits[:, :, :10] = -np.inf  # bins the teacher's crop does not reach
    levels = 16
    rec = reconstruct(*encode_window(logits, 64, 4, levels), 64, levels)
    p, q = np.exp(log_softmax(logits)), np.exp(rec)
    assert (q[:, :, :10] == 0).all()
    codes = np.rint(levels * np.exp(CODE_EXPONENT * (log_softmax(logits) - log_softmax(logits).max(-1, keepdims=True))))
    far = (codes == 0) & np.isfinite(logits)
    assert far.any(-1).all()  # every row has code-0 bins: they carry the tail
    # per tail block of 16 bins, the code-0 bins hold the mass the teacher put there (up to the
    # renormalisation by the coded bins' rounding)
    for b in range(4):
        block = far & (np.arange(64) // 16 == b)
        np.testing.assert_allclose((q * block).sum(-1), (p * block).sum(-1), rtol=0.1, atol=1e-6)
    with pytest.raises(ValueError, match='levels 256'):
        encode_window(logits, 64, 1, 256)


def _delta_entropy_bits(codes: np.ndarray) -> float:
    """Order-0 entropy of the rows' zigzag deltas, in bits (what zstd's entropy stage approaches)."""
    _, counts = np.unique(zigzag_deltas(codes), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum() * counts.sum())


def _rd_objective(codes, rel, levels, rd_lambda):
    """bits + rd_lambda * distortion of one row's codes, as cache.window documents it."""
    deltas = np.diff(codes.astype(np.int64), prepend=0)
    bits = DELTA_BITS[deltas + (len(DELTA_BITS) // 2)].sum()
    norm = np.exp(SHARPEN * rel).sum()
    level = np.where(codes > 0, np.log(np.maximum(codes, 1) / levels) / CODE_EXPONENT,
                     np.minimum(rel, np.log(ZERO_CODE_LEVEL / levels) / CODE_EXPONENT))
    p, q = np.exp(SHARPEN * rel) / norm, np.exp(SHARPEN * level) / norm
    return bits + rd_lambda * (p * SHARPEN * (rel - level) - p + q).sum()


def test_rd_codes_are_the_cheapest_codes_a_brute_force_finds():
    rng = np.random.default_rng(5)
    levels, n = 12, 9
    for rd_lambda in (3e2, 3e3, 3e4):
        rel = log_softmax(flat_logits(rng, (6,), n) * 3)
        rel = rel - rel.max(-1, keepdims=True)
        codes = rd_codes(rel, levels, rd_lambda)
        u = levels * np.exp(CODE_EXPONENT * rel)
        for row in range(len(rel)):
            down = np.floor(u[row]).astype(np.int64)
            # every choice of rounding each bin down or up
            choices = down + (np.arange(2 ** n)[:, None] >> np.arange(n) & 1)
            best = min(_rd_objective(c, rel[row], levels, rd_lambda) for c in choices)
            assert set(codes[row] - down) <= {0, 1}
            assert _rd_objective(codes[row], rel[row], levels, rd_lambda) == pytest.approx(best, rel=1e-5)


def test_rd_codes_cost_fewer_bits_than_rounding_at_the_same_kl():
    rng = np.random.default_rng(6)
    logits = flat_logits(rng, (60, 4), 160)

    def kl_and_bits(levels, rd_lambda):
        enc = encode_window(logits, 160, 1, levels, rd_lambda)
        return (kl_at_temperature(logits, reconstruct(*enc, 160, levels), 0.1).mean(),
                _delta_entropy_bits(undo_zigzag_deltas(enc[1])))

    kl, bits = kl_and_bits(36, 1.2e5)
    assert kl < 1e-3
    # every rounded encoding at least as faithful costs more bits (the search moves the frontier)
    rounded = [kl_and_bits(levels, 0.0) for levels in range(24, 49, 2)]
    assert any(k <= kl for k, _ in rounded)
    assert all(b > 1.03 * bits for k, b in rounded if k <= kl)
    # and a larger lambda spends more bits for a lower KL
    kl_more, bits_more = kl_and_bits(36, 1e6)
    assert kl_more < kl and bits_more > bits


def test_rd_codes_put_no_mass_on_a_sharp_rows_empty_flanks():
    """On rows like a trained teacher's (one narrow peak), the far bins have no weight at the sharpened
    target: a search that only weighed the error there would fill them with code 1 (cheap deltas) and
    put most of the row's mass where the teacher has none."""
    rng = np.random.default_rng(8)
    logits = peaked_logits(rng, (50, 4), 192)
    rounded, searched = encode_window(logits, 192, 1, 36), encode_window(logits, 192, 1, 36, 1.2e5)
    kl = {t: [kl_at_temperature(logits, reconstruct(*enc, 192, 36), t).mean() for enc in (rounded, searched)]
          for t in (0.1, 1.0)}
    assert kl[0.1][1] < 1e-3 and kl[1.0][1] < 1.15 * kl[1.0][0]
    codes = undo_zigzag_deltas(searched[1])
    far = log_softmax(logits) < log_softmax(logits).max(-1, keepdims=True) - 4
    assert (codes[far] == 0).all()


def test_rd_codes_leave_unseen_bins_empty_and_refuse_bad_settings():
    rng = np.random.default_rng(7)
    logits = flat_logits(rng, (20, 2), 64)
    logits[:, 0, :12] = -np.inf
    logits[3, 1] = -np.inf  # a row the teacher does not see at all
    enc = encode_window(logits, 64, 1, 36, 1.2e5)
    codes = undo_zigzag_deltas(enc[1])
    assert (codes[:, 0, :12] == 0).all() and (codes[3, 1] == 0).all() and codes.max() <= 37
    rec = reconstruct(*enc, 64, 36)
    assert (np.exp(rec[:, 0, :12]) == 0).all() and np.isfinite(rec).all()
    for levels, rd_lambda in ((0, 1e5), (36, -1.0)):
        with pytest.raises(ValueError, match='rd_lambda'):
            encode_window(logits, 64, 1, levels, rd_lambda)


def test_rd_codes_search_each_row_on_its_own(monkeypatch):
    """Rows are searched in blocks (to bound memory): the codes do not depend on the blocks."""
    import cache.window as window
    rel = log_softmax(flat_logits(np.random.default_rng(9), (5, 7), 40))
    rel = rel - rel.max(-1, keepdims=True)
    whole = rd_codes(rel, 36, 1.2e5)
    monkeypatch.setattr(window, 'RD_BLOCK_ROWS', 3)
    np.testing.assert_array_equal(rd_codes(rel, 36, 1.2e5), whole)
    np.testing.assert_array_equal(rd_codes(rel[2, 4], 36, 1.2e5), whole[2, 4])

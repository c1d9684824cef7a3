import numpy as np
import pytest

from cache.window import (TAIL_FLOOR, argmax_agreement, encode_window, kl_at_temperature, log_softmax,
                          reconstruct, window_starts)


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
    start, values, tail = encode_window(logits, 8)
    assert start.dtype == np.int16 and values.dtype == np.float16 and tail.dtype == np.float16
    assert start.shape == (5, 4) and values.shape == (5, 4, 8) and tail.shape == (5, 4)
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
    start, values, _ = encode_window(logits, 6)
    assert start.tolist() == [0, 24]
    assert np.argmax(values[0]) == 0 and np.argmax(values[1]) == 5


def test_tail_preserves_total_mass():
    rng = np.random.default_rng(1)
    logits = peaked_logits(rng, (50, 3), 96, amplitude=4.0, noise=1.0)  # plenty of mass outside
    w = 16
    start, values, tail = encode_window(logits, w)
    recon = reconstruct(start, values, tail, 96)
    np.testing.assert_allclose(np.exp(recon.astype(np.float64)).sum(-1), 1.0, atol=5e-3)
    # the tail carries exactly the outside mass (to fp16 precision)
    p = np.exp(log_softmax(logits))
    inside = np.zeros_like(p, dtype=bool)
    np.put_along_axis(inside, start[..., None].astype(int) + np.arange(w), True, axis=-1)
    outside_mass = np.where(inside, 0.0, p).sum(-1)
    assert outside_mass.min() > 0.02
    np.testing.assert_allclose(np.exp(tail.astype(np.float64)) * (96 - w), outside_mass, rtol=2e-3)


def test_full_width_window_is_lossless():
    rng = np.random.default_rng(2)
    logits = peaked_logits(rng, (20, 3), 96)
    start, values, tail = encode_window(logits, 96)
    assert (start == 0).all()
    recon = reconstruct(start, values, tail, 96)
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
    start, values, tail = encode_window(logits, 8)
    assert np.isfinite(tail).all() and float(tail[0]) == pytest.approx(TAIL_FLOOR, abs=0.1)
    recon = reconstruct(start, values, tail, 50)
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

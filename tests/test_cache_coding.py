"""The helpers of benchmarks/cache_coding.py: a lossless layout must invert exactly, and the entropy
estimate must see what a context tells about the symbols and nothing more."""
import numpy as np
import pytest

from benchmarks.cache_coding import conditional_code_bytes, outward_deltas, peak_index, undo_outward_deltas


def test_outward_deltas_invert_exactly_on_ties_flat_rows_and_peaks_at_the_edges():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 33, size=(200, 57))
    codes[0] = 0                      # an all-zero row
    codes[1] = 32                     # a flat row at the top code
    codes[2, :] = 3; codes[2, 0] = 32  # peak in the first bin
    codes[3, :] = 3; codes[3, -1] = 32  # peak in the last bin
    codes[4, [10, 40]] = 40           # two equal peaks
    d = outward_deltas(codes)
    assert np.array_equal(undo_outward_deltas(d, peak_index(codes)), codes)


def test_outward_deltas_of_a_one_peaked_row_all_fall_away_from_the_peak():
    row = np.array([[0, 1, 3, 7, 12, 9, 4, 2, 2, 0]])
    d = outward_deltas(row)
    assert d[0, 4] == 12
    assert (np.delete(d[0], 4) <= 0).all()
    # the ordinary deltas change sign at the peak
    plain = np.diff(row, prepend=0)[0]
    assert (plain[:5] >= 0).all() and (plain[5:] <= 0).all()


def test_conditional_code_bytes_of_independent_symbols_is_their_entropy():
    rng = np.random.default_rng(1)
    symbols = rng.integers(0, 4, size=(400, 50))
    context = rng.integers(0, 3, size=(400, 50))
    fold = (np.arange(400) % 2 == 1)[:, None]
    # 2 bits per symbol, plus the small cost of tables fitted on the other half
    assert conditional_code_bytes(symbols, context, fold) == pytest.approx(400 * 50 * 2 / 8, rel=0.01)


def test_conditional_code_bytes_of_a_context_that_fixes_the_symbol_is_near_zero():
    rng = np.random.default_rng(2)
    context = rng.integers(0, 4, size=(400, 50))
    fold = (np.arange(400) % 2 == 1)[:, None]
    alone = conditional_code_bytes(context, np.zeros_like(context), fold)
    given = conditional_code_bytes(context, context, fold)
    assert alone == pytest.approx(400 * 50 * 2 / 8, rel=0.01)
    assert given < 0.02 * alone

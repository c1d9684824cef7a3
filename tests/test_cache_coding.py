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


def _edge_codes(rng, levels=32):
    codes = rng.integers(0, levels + 1, size=(300, 61))
    codes[0] = 0                                 # an all-zero row
    codes[1] = levels                            # flat at the top code
    codes[2, :] = 3; codes[2, 0] = levels        # top code in the first bin
    codes[3, :] = 3; codes[3, -1] = levels       # top code in the last bin
    codes[4] = np.arange(61) * 4 % 256           # steps far outside the clipped last delta, wrapping
    return codes


def test_context_sort_inverts_exactly_and_counts_every_context():
    from benchmarks.cache_coding import context_sort, undo_context_sort
    from cache.window import zigzag_deltas
    stored = zigzag_deltas(_edge_codes(np.random.default_rng(3)))
    grouped, counts = context_sort(stored, 32)
    assert grouped.shape == (stored.size,) and counts.sum() == stored.size
    assert not np.array_equal(grouped, stored.T.ravel())  # it did reorder
    assert np.array_equal(np.sort(grouped), np.sort(stored.ravel()))  # a permutation
    assert np.array_equal(undo_context_sort(grouped, counts, stored.shape, 32), stored)


def test_context_sort_groups_bytes_by_what_precedes_them_bin_by_bin():
    from benchmarks.cache_coding import coding_context, context_sort
    from cache.window import zigzag_deltas
    codes = np.array([[0, 2, 4, 4, 1],
                      [0, 2, 3, 4, 4]])
    stored = zigzag_deltas(codes)
    grouped, counts = context_sort(stored, levels=4)
    # each bin's context by hand: previous code, a top code (4) before, last delta clipped to [-2, 2]
    prev = np.array([[0, 0, 2, 4, 4], [0, 0, 2, 3, 4]])
    top_seen = np.array([[0, 0, 0, 1, 1], [0, 0, 0, 0, 1]])
    last = np.array([[0, 0, 2, 2, 0], [0, 0, 2, 1, 1]])
    ctx = coding_context(prev, top_seen, last)
    expected = [stored[r, i] for _, i, r in sorted((ctx[r, i], i, r) for i in range(5) for r in range(2))]
    assert grouped.tolist() == expected
    assert counts[ctx[0, 0]] == 4  # bins 0 and 1 of both rows share the all-zero context


def test_stock_coders_round_trip_the_codes_they_are_given():
    from benchmarks.cache_coding import flank_mapped, stock_coder_bytes
    codes = np.minimum(_edge_codes(np.random.default_rng(4)), 32)  # flank mapping needs codes < 64
    mapped = flank_mapped(codes, 32)
    assert mapped[2, 0] == 32 and (mapped[2, 1:] == 3 + 64).all()  # after the first top code: + 64
    assert (mapped[0] == 0).all()
    result = stock_coder_bytes({'x': codes[:, :40], 'y': codes}, levels=32, n=100, chunk=40)  # 3 joints each
    assert {'LZMA, lc 4', 'bzip2 -9'} <= set(result)
    for name in ('LZMA, lc 4', 'bzip2 -9'):
        assert result[name]['round_trip'] and not result[name]['failures']
        assert 0 < result[name]['bytes_per_row'] < 3 * 101


def test_stock_coder_bytes_names_where_a_coder_fails_its_round_trip(monkeypatch):
    import benchmarks.cache_coding as coding
    codes = np.zeros((6, 8), dtype=np.int64)  # 3 instances x 2 joints
    # a decoder that drops the last byte of every second chunk
    calls = []
    def lossy(blob, n):
        calls.append(n)
        return np.frombuffer(blob, np.uint8)[:n - (len(calls) % 2 == 0)]
    monkeypatch.setattr(coding, 'stock_coders', lambda: {'lossy': (lambda a: a.tobytes(), lossy, 'codes')})
    result = coding.stock_coder_bytes({'x': codes}, levels=32, n=3, chunk=2)['lossy']
    assert not result['round_trip']
    assert result['failures'] == [dict(axis='x', first_instance=2, bytes=16, decoded=15, first_wrong=15)]

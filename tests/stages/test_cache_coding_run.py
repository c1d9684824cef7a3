"""benchmarks/cache_coding.py on the stage tests' world (random teachers, a few rows): every layout of
the codes through every codec, and the entropy estimates, per teacher."""
import pytest
import torch


@pytest.mark.slow
def test_cache_coding_measures_every_layout_codec_and_context(stage_env):
    from benchmarks.cache_coding import N_CONTEXTS, measure
    result = measure(stage_env.cfg('coding'), rows=8, device=torch.device('cpu'))
    assert result['rows'] == 8 and set(result['teachers']) == {'coco', 'mpii'}
    for teacher in result['teachers'].values():
        layouts = teacher['layouts']
        assert set(layouts) == {'deltas', 'outward deltas', 'codes', '2nd deltas', 'context-sorted'}
        for label, by_codec in layouts.items():
            assert set(by_codec) == set(result['codecs'])
            # uncompressed, every layout is one byte per bin; the context-sorted one adds its counts (two
            # uint32 arrays, each with its 4-byte chunk checksum, over the 8 rows)
            extra = 2 * (4 * N_CONTEXTS + 4) / 8 if label == 'context-sorted' else 0
            assert by_codec['none']['bytes_per_row'] == layouts['codes']['none']['bytes_per_row'] + extra
            assert all(v['encode_mb_s'] > 0 for v in by_codec.values())
        assert all(seconds > 0 for seconds in teacher['context_sort_seconds'].values())
        assert layouts['deltas']['zstd7-bit']['bytes_per_row'] < layouts['codes']['none']['bytes_per_row']
        entropy = teacher['entropy']
        assert 0 < entropy['previous code'] < entropy['order 0']

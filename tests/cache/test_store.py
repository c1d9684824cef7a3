import json
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from cache import store
from cache.fidelity import fidelity_report
from cache.manifest import build_manifest
from cache.store import CacheChunkError, CacheError, create_cache, open_cache, reconstruct_rows
from cache.window import encode_window, log_softmax, reconstruct
from data.instances import InstanceTable
from tests.conftest import COCO_MPII

K21 = COCO_MPII.num_joints

N, V, CHUNK, WINDOW = 300, 2, 64, 16  # 5 chunks, the last one 44 rows
FIELDS = ['flip', 'scale', 'rotation']
TEACHERS = {
    'coco': dict(union_joints=[0, 5, 6], bins_x=96, bins_y=128, bin_map={'x': [1.0, 16.0], 'y': [1.0, 0.0]}),
    'mpii': dict(union_joints=[17, 18, 19, 20], bins_x=96, bins_y=128, bin_map={'x': [1.0, 0.0], 'y': [1.0, 0.0]}),
}


def make_instances(n=N):
    rng = np.random.default_rng(0)
    return InstanceTable(
        dataset=np.array(['coco', 'mpii'] * (n // 2)), image_path=np.array([f'img/é{i % 7}.jpg' for i in range(n)]),
        image_id=np.arange(n, dtype=np.int64) // 3, instance_key=np.arange(n, dtype=np.int64) + 1000,
        bbox=rng.uniform(0, 100, (n, 4)).astype(np.float32), bbox_score=np.ones(n, np.float32),
        keypoints=rng.uniform(0, 100, (n, K21, 2)).astype(np.float32),
        keypoints_visible=(rng.uniform(size=(n, K21)) > 0.3).astype(np.float32),
        annotated=rng.uniform(size=(n, K21)) > 0.2, head_size=np.full(n, np.nan, np.float32),
        area=rng.uniform(1, 1e4, n).astype(np.float32))


def make_views():
    return np.random.default_rng(1).uniform(-1, 1, (V, N, len(FIELDS))).astype(np.float32)


def unit_rows(teacher, view, chunk, n):
    """Deterministic synthetic teacher rows for one unit: Gaussian peaks plus noise."""
    spec = TEACHERS[teacher]
    rng = np.random.default_rng([sorted(TEACHERS).index(teacher), view, chunk])
    k = len(spec['union_joints'])
    out = []
    for bins in (spec['bins_x'], spec['bins_y']):
        centres = rng.uniform(0, bins - 1, (n, k, 1))
        grid = np.arange(bins)
        out.append((10 * np.exp(-(grid - centres) ** 2 / 32) + 0.3 * rng.standard_normal((n, k, bins)))
                   .astype(np.float32))
    outside = rng.uniform(0, 0.2, (2, n, k)).astype(np.float32)
    return out[0], out[1], outside[0], outside[1]


def new_cache(path, lossless=False):
    manifest = build_manifest(seed=7, teachers={'coco': {'checkpoint_sha256': 'ab' * 32}}, norm=float('nan'))
    return create_cache(path, manifest, make_instances(), make_views(), FIELDS, TEACHERS,
                        window=WINDOW, lossless=lossless, chunk_size=CHUNK)


def write_units(path, units):
    cache = open_cache(path, mode='r+')
    for teacher, view, chunk in units:
        rows = cache.chunk_rows(chunk)
        cache.write_unit(teacher, view, chunk, *unit_rows(teacher, view, chunk, rows.stop - rows.start))


def all_units(cache):
    return [(t, v, c) for t in cache.teacher_names for v, c in cache.units()]


def test_round_trip_equals_encode_reconstruct_of_inputs(tmp_path):
    cache = new_cache(tmp_path / 'train.zarr')
    assert cache.n_views == V and cache.n_instances == N and cache.chunk_size == CHUNK
    assert len(cache.units()) == V * 5 and cache.pending_units('coco') == cache.units()
    write_units(cache.path, all_units(cache))

    cache = open_cache(tmp_path / 'train.zarr')
    assert cache.manifest['seed'] == 7 and cache.manifest['teachers']['coco']['checkpoint_sha256'] == 'ab' * 32
    assert cache.teacher_names == ['coco', 'mpii']
    assert cache.teacher_spec('mpii')['union_joints'] == [17, 18, 19, 20]
    assert cache.teacher_spec('coco')['window_x'] == WINDOW and cache.view_fields == FIELDS
    np.testing.assert_array_equal(cache.views, make_views())
    for name, column in make_instances().columns().items():
        np.testing.assert_array_equal(cache.instances.columns()[name], column)
    assert cache.instances.image_path.dtype.kind == 'U'

    for teacher in cache.teacher_names:
        assert cache.pending_units(teacher) == [] and cache.done(teacher).all()
        for view in range(V):
            plane = cache.read_view_plane(teacher, view)
            assert plane['x_values'].shape == (N, len(TEACHERS[teacher]['union_joints']), WINDOW)
            x, y, xo, yo = reconstruct_rows(plane, np.arange(N))
            for chunk in range(5):
                rows = cache.chunk_rows(chunk)
                xl, yl, xol, yol = unit_rows(teacher, view, chunk, rows.stop - rows.start)
                np.testing.assert_array_equal(x[rows], reconstruct(*encode_window(xl, WINDOW), 96))
                np.testing.assert_array_equal(y[rows], reconstruct(*encode_window(yl, WINDOW), 128))
                np.testing.assert_array_equal(xo[rows], xol.astype(np.float16).astype(np.float32))
                np.testing.assert_array_equal(yo[rows], yol.astype(np.float16).astype(np.float32))
            # a random batch from the plane equals the same rows read by orthogonal selection
            idx = np.random.default_rng(view).choice(N, 40, replace=False)
            batch = reconstruct_rows(cache.read_rows(teacher, view, idx))
            for a, b in zip(batch, reconstruct_rows(plane, idx)):
                np.testing.assert_array_equal(a, b)


def test_lossless_store_keeps_full_rows(tmp_path):
    cache = new_cache(tmp_path / 'val.zarr', lossless=True)
    assert cache.teacher_spec('coco')['window_y'] == 128
    write_units(cache.path, [('coco', 0, c) for c in range(5)])
    plane = cache.read_view_plane('coco', 0)
    assert plane['y_values'].shape == (N, 3, 128)
    x, y, _, _ = reconstruct_rows(plane, slice(0, CHUNK))
    xl, yl, _, _ = unit_rows('coco', 0, 0, CHUNK)
    np.testing.assert_allclose(y, log_softmax(yl), atol=0.05, rtol=1e-3)
    with pytest.raises(CacheError, match='view 1'):
        cache.read_view_plane('coco', 1)


def test_resume_lists_exactly_the_unwritten_units(tmp_path):
    cache = new_cache(tmp_path / 'train.zarr')
    written = [('coco', 0, 1), ('coco', 1, 4), ('mpii', 0, 0)]
    write_units(cache.path, written)
    cache = open_cache(cache.path)
    assert cache.pending_units('coco') == [u for u in cache.units() if u not in [(0, 1), (1, 4)]]
    assert cache.pending_units('mpii') == [u for u in cache.units() if u != (0, 0)]
    assert cache.written_rows('coco') == CHUNK + (N - 4 * CHUNK)
    with pytest.raises(CacheError, match=str(cache.path)):
        cache.read_view_plane('coco', 0)


def test_teacher_limited_to_some_datasets_has_only_their_units(tmp_path):
    """A val cache runs a teacher only on the datasets the report scores: chunks without any of
    those rows are not its units (never pending, never required), the rest read back as written."""
    table = make_instances()
    table.dataset[:] = np.where(np.arange(N) < 130, 'coco', 'mpii')  # chunk 2 (128-191) holds both
    manifest = build_manifest(seed=7, teachers={}, norm=float('nan'))
    teachers = {'coco': dict(TEACHERS['coco'], datasets=['coco']), 'mpii': TEACHERS['mpii']}
    cache = create_cache(tmp_path / 'val.zarr', manifest, table, make_views(), FIELDS, teachers,
                         window=WINDOW, lossless=False, chunk_size=CHUNK)
    assert cache.chunks_of('coco').tolist() == [True, True, True, False, False]
    assert cache.chunks_of('mpii').all() and cache.teacher_spec('mpii')['datasets'] is None
    assert cache.pending_units('coco') == [(v, c) for v in range(V) for c in range(3)]
    with pytest.raises(CacheError, match='chunks not written'):
        cache.read_view_plane('coco', 0)
    write_units(cache.path, [('coco', v, c) for v in range(V) for c in range(3)])
    cache = open_cache(cache.path)
    assert cache.pending_units('coco') == [] and cache.rows_of('coco').sum() == 130
    plane = cache.read_view_plane('coco', 1)
    rx, _, _, _ = reconstruct_rows(plane, np.arange(CHUNK))
    sx, _, _, _ = unit_rows('coco', 1, 0, CHUNK)
    np.testing.assert_array_equal(rx, reconstruct(*encode_window(sx, WINDOW), 96))
    assert not plane['x_values'][3 * CHUNK:].any()  # never written
    cache.read_rows('coco', 0, [5, 129])  # rows in written chunks only: fine
    with pytest.raises(CacheError, match='chunks not written'):
        cache.read_rows('coco', 0, [5, 200])


def test_unit_killed_before_its_marker_stays_pending(tmp_path):
    cache = new_cache(tmp_path / 'train.zarr')
    real_array = cache._array

    def dies_at_the_marker(teacher, name):
        if name == 'done':
            raise KeyboardInterrupt('killed')
        return real_array(teacher, name)

    cache._array = dies_at_the_marker
    with pytest.raises(KeyboardInterrupt):
        cache.write_unit('coco', 1, 2, *unit_rows('coco', 1, 2, CHUNK))
    reopened = open_cache(cache.path, mode='r+')
    # the rows reached the disk, the marker did not: the unit is redone on resume
    assert np.any(zarr.open_array(cache.path / 'teachers/coco/x_values', mode='r')[1, 2 * CHUNK:3 * CHUNK] != 0)
    assert (1, 2) in reopened.pending_units('coco')
    reopened.write_unit('coco', 1, 2, *unit_rows('coco', 1, 2, CHUNK))
    assert (1, 2) not in reopened.pending_units('coco')


def test_refuses_missing_incomplete_foreign_and_existing_stores(tmp_path):
    missing = tmp_path / 'nope.zarr'
    with pytest.raises(CacheError, match=f'no teacher cache at {missing}'):
        open_cache(missing)
    (tmp_path / 'plain').mkdir()
    with pytest.raises(CacheError, match='not a Zarr v3 group'):
        open_cache(tmp_path / 'plain')

    path = tmp_path / 'train.zarr'
    new_cache(path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []  # no temp dir left
    with pytest.raises(FileExistsError, match=str(path)):
        new_cache(path)
    with pytest.raises(CacheError, match='read-only'):
        open_cache(path).write_unit('coco', 0, 0, *unit_rows('coco', 0, 0, CHUNK))
    with pytest.raises(ValueError, match=r'expects x logits \(64, 3, 96\)'):
        open_cache(path, 'r+').write_unit('coco', 0, 0, *unit_rows('mpii', 0, 0, CHUNK))

    meta = path / 'zarr.json'
    original = json.loads(meta.read_text())
    half = json.loads(meta.read_text())
    del half['attributes']['complete']
    meta.write_text(json.dumps(half))
    with pytest.raises(CacheError, match=f'{path} is incomplete'):
        open_cache(path)
    other = json.loads(meta.read_text())
    other['attributes'].update(complete=True, layout_version=99)
    meta.write_text(json.dumps(other))
    with pytest.raises(CacheError, match=f'{path} has cache layout version 99'):
        open_cache(path)
    other['attributes'].update(layout_version=3)  # fp16 windows: refused with the command that rebuilds it
    meta.write_text(json.dumps(other))
    with pytest.raises(CacheError) as err:
        open_cache(path)
    assert str(err.value) == (f'{path} has cache layout version 3, this code reads version 4; '
                              'run dump-teachers --no-resume to rebuild it')
    other['attributes'].update(layout_version=2)  # the layout before chunk checksums
    meta.write_text(json.dumps(other))
    with pytest.raises(CacheError) as err:
        open_cache(path)
    assert str(err.value) == (f'{path}: cache layout version 2 has no checksums; '
                              'run dump-teachers --no-resume to rebuild it')
    meta.write_text(json.dumps(original))
    assert open_cache(path).n_instances == N


def _write_share(path, units):
    write_units(Path(path), units)


def test_two_processes_writing_disjoint_units_match_one_process(tmp_path):
    one = new_cache(tmp_path / 'one.zarr')
    units = all_units(one)
    write_units(one.path, units)
    two = new_cache(tmp_path / 'two.zarr')
    context = multiprocessing.get_context('spawn')  # zarr runs an event-loop thread: never fork it
    workers = [context.Process(target=_write_share, args=(str(two.path), units[rank::2])) for rank in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    one, two = zarr.open_group(one.path, mode='r'), zarr.open_group(two.path, mode='r')
    for teacher in TEACHERS:
        for name, array in one[f'teachers/{teacher}'].arrays():
            np.testing.assert_array_equal(array[...], two[f'teachers/{teacher}/{name}'][...], err_msg=name)
    assert open_cache(tmp_path / 'two.zarr').pending_units('mpii') == []


def test_fidelity_report(tmp_path):
    cache = new_cache(tmp_path / 'train.zarr')
    write_units(cache.path, [('coco', 0, c) for c in range(5)])
    xl, yl, _, _ = unit_rows('coco', 0, 0, CHUNK)
    plane = cache.read_view_plane('coco', 0)
    x, y, _, _ = reconstruct_rows(plane, slice(0, CHUNK))
    report = fidelity_report(cache, {'coco': [(xl, x), (yl, y)]}, temperatures=[1.0, 0.5])
    coco = report['teachers']['coco']
    assert coco['rows'] == 2 * CHUNK * 3 and coco['argmax_agreement'] > 0.95
    assert 0 <= coco['kl']['1.0']['mean'] <= coco['kl']['1.0']['max'] < 0.05
    assert coco['written_rows'] == N and report['teachers']['mpii']['written_rows'] == 0
    assert 0 < coco['bytes_per_row'] < coco['raw_fp16_bytes_per_row']


def damage(file: Path) -> None:
    """Flip one bit in the middle of a stored chunk (its length and name unchanged: bit rot)."""
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x10
    file.write_bytes(bytes(data))


def chunk_message(path, array, key, remedy='run dump-teachers again to recompute it'):
    return f'{path}/{array}: chunk {key} fails its checksum; {remedy}'


def test_every_chunk_carries_a_checksum_and_a_damaged_one_is_named(tmp_path):
    cache = new_cache(tmp_path / 'train.zarr')
    write_units(cache.path, all_units(cache))
    root = zarr.open_group(cache.path, mode='r')
    arrays = [(f'instances/{n}', a) for n, a in root['instances'].arrays()] + [('views', root['views'])]
    arrays += [(f'teachers/{t}/{n}', a) for t in TEACHERS for n, a in root[f'teachers/{t}'].arrays()]
    assert len(arrays) == 11 + 1 + 2 * 12
    for name, array in arrays:
        assert array.metadata.to_dict()['codecs'][-1] == {'name': 'crc32c'}, name

    damage(cache.path / 'teachers/coco/x_values/c/1/2/0/0')
    cache = open_cache(cache.path)
    with pytest.raises(CacheChunkError) as err:
        cache.read_view_plane('coco', 1)
    assert str(err.value) == chunk_message(cache.path, 'teachers/coco/x_values', 'c/1/2/0/0')
    with pytest.raises(CacheChunkError, match='c/1/2/0/0'):
        cache.read_rows('coco', 1, [3, 2 * CHUNK + 5])
    # the chunks around it still read
    cache.read_rows('coco', 1, [3, 3 * CHUNK + 5])
    cache.read_view_plane('coco', 0)

    damage(cache.path / 'teachers/mpii/done/c/0/4')
    with pytest.raises(CacheChunkError) as err:
        cache.pending_units('mpii')
    assert str(err.value) == chunk_message(cache.path, 'teachers/mpii/done', 'c/0/4')

    damage(cache.path / 'views/c/1/0/0')
    with pytest.raises(CacheChunkError) as err:
        cache.views
    assert str(err.value) == chunk_message(cache.path, 'views', 'c/1/0/0',
                                           'run dump-teachers --no-resume to rebuild the cache')


def test_verify_finds_the_damaged_units_and_their_rewrite_repairs_them(tmp_path):
    intact = new_cache(tmp_path / 'intact.zarr')
    write_units(intact.path, all_units(intact))
    cache = new_cache(tmp_path / 'train.zarr')
    write_units(cache.path, [u for u in all_units(cache) if u != ('mpii', 1, 4)])  # one unit pending
    found = cache.verify()
    assert {t: (r.checked, r.failed) for t, r in found.items()} == {'coco': (10, {}), 'mpii': (9, {})}

    damage(cache.path / 'teachers/coco/y_tail/c/1/2/0/0')
    damage(cache.path / 'teachers/coco/done/c/0/3')
    damage(cache.path / 'teachers/mpii/x_outside/c/0/0/0')
    found = open_cache(cache.path).verify()
    assert {t: r.checked for t, r in found.items()} == {'coco': 10, 'mpii': 9}
    assert sorted(found['coco'].failed) == [(0, 3), (1, 2)] and list(found['mpii'].failed) == [(0, 0)]
    assert str(found['coco'].failed[(1, 2)]) == chunk_message(cache.path, 'teachers/coco/y_tail', 'c/1/2/0/0')
    assert str(found['coco'].failed[(0, 3)]) == chunk_message(cache.path, 'teachers/coco/done', 'c/0/3')

    cache = open_cache(cache.path, mode='r+')
    for teacher, result in found.items():
        cache.mark_pending(teacher, list(result.failed))
    assert cache.pending_units('coco') == [(0, 3), (1, 2)]
    assert cache.pending_units('mpii') == [(0, 0), (1, 4)]
    write_units(cache.path, [('coco', 0, 3), ('coco', 1, 2), ('mpii', 0, 0), ('mpii', 1, 4)])
    assert all(not r.failed for r in open_cache(cache.path).verify().values())
    one, two = zarr.open_group(intact.path, mode='r'), zarr.open_group(cache.path, mode='r')
    for teacher in TEACHERS:
        for name, array in one[f'teachers/{teacher}'].arrays():
            np.testing.assert_array_equal(array[...], two[f'teachers/{teacher}/{name}'][...], err_msg=name)

    damage(cache.path / 'instances/bbox/c/0/0')  # not a unit: only a new cache rebuilds it
    with pytest.raises(CacheChunkError, match='instances/bbox: chunk c/0/0 .*--no-resume'):
        open_cache(cache.path).verify()


def test_space_estimate_bounds_the_written_cache_and_a_full_disk_is_refused(tmp_path, monkeypatch):
    cache = new_cache(tmp_path / 'train.zarr')
    write_units(cache.path, all_units(cache))
    on_disk = sum(f.stat().st_blocks * 512 for f in cache.path.rglob('*') if f.is_file())
    specs = {t: cache.teacher_spec(t) for t in TEACHERS}
    shared = make_views().nbytes + sum(np.asarray(v).nbytes for v in make_instances().columns().values())
    estimate = store.estimate_nbytes(N, V, specs, CHUNK, shared)
    assert on_disk <= estimate <= 4 * on_disk, (on_disk, estimate)

    monkeypatch.setattr(shutil, 'disk_usage', lambda where: shutil._ntuple_diskusage(10 ** 9, 10 ** 9 - 5000, 5000))
    with pytest.raises(CacheError, match=rf'needs up to 0\.00 GB \({estimate:,} bytes\) and {tmp_path} has '
                                         r'0\.00 GB \(5,000 bytes\) free'):
        new_cache(tmp_path / 'val.zarr')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['train.zarr']  # nothing made, not even a temp dir

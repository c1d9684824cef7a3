"""Stage one (dump-teachers) on the tiny synthetic world: complete caches, contract 2 against the live
teachers, resumption doing only the pending work, refusal of a cache built from another config."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import zarr

from cache.manifest import diff_manifest
from cache.store import CacheChunkError, CacheError, encode_axis, open_cache, reconstruct_rows
from cache.window import CODE_EXPONENT, kl_at_temperature, log_softmax, reconstruct
from pipeline.models import kd_temperature
from pipeline.run import cache_path, split_instances, split_views, view_stages
from cache.manifest import MATCH_KEYS
from pipeline.cache_check import expected_manifest
from stages.dump import cache_fidelity, dump_teachers
from tests.stages.conftest import (assert_same_arrays, live_rows, load_teachers, save_random_teacher,
                                   teacher_arrays)

FP16_LOGP_TOL = 1e-2  # fp16 rounding of log-probabilities of magnitude < 16 is < 4e-3


def test_dump_writes_complete_caches_with_stats(dumped):
    cfg = dumped['cfg']
    for split, n_views in (('train', int(cfg.views.num_views)), ('val', 2)):
        table = split_instances(cfg, split)
        cache = open_cache(cache_path(cfg, split))
        assert (cache.n_views, cache.n_instances) == (n_views, len(table)), split
        assert cache.n_chunks == math.ceil(len(table) / int(cfg.cache.chunk_size))
        assert sorted(cache.teacher_names) == sorted(cfg.teachers)
        np.testing.assert_array_equal(cache.instances.instance_key, table.instance_key)
        # the stored view records are the ones the config draws (what train replays)
        np.testing.assert_array_equal(cache.views, split_views(cfg, table, view_stages(cfg, split)))
        assert diff_manifest(expected_manifest(cfg, split, view_stages(cfg, split), table), cache.manifest, keys=MATCH_KEYS) == []
        stats = cache.manifest['stats']
        for name in cfg.teachers:
            assert cache.done(name).all() and cache.pending_units(name) == [], (split, name)
            st = stats[name]
            assert st['rows'] == n_views * len(table), (split, name, st['rows'])
            assert st['forward_seconds'] > 0 and st['wall_seconds'] >= st['forward_seconds']
            fid = st['fidelity']
            assert fid['rows'] > 0 and fid['written_rows'] == n_views * len(table)
            kl = fid['kl']['1.0']
            assert np.isfinite(kl['mean']) and np.isfinite(kl['max']) and 0 <= kl['mean'] <= kl['max']
            assert fid['argmax_agreement'] >= 0.99  # fp16 may split near-ties of these flat random teachers
        assert dumped['stats'][split] == {n: stats[n] for n in cfg.teachers}


ROWS = np.array([0, 7, 17, 30, 41, 56])  # spread over every chunk of 16, both datasets


@pytest.mark.parametrize('which', ['dumped', 'lossless_dumped'])
def test_contract2_cache_rows_equal_live_teacher_on_replayed_crop(which, request):
    """Reconstructed (teacher, view, instance) rows == the live teacher on the replayed crop mapped into
    the student's bins (as a distribution over those bins, plus the mass outside the student crop),
    within fp16 rounding inside the window (coded rows: within half a code step where the sharpened row
    has its mass) and the encoding's own loss outside it."""
    cfg = request.getfixturevalue(which)['cfg']
    cache = open_cache(cache_path(cfg, 'train'))
    table, views = cache.instances, cache.views
    rows = ROWS[ROWS < len(table)]
    for name, model in load_teachers(cfg).items():
        spec = cache.teacher_spec(name)
        lossless, levels = bool(spec['lossless']), spec['levels']
        # coded rows: a code >= levels / 2 is within half a step of the truth (exp(a * d) quantised),
        # after the renormalisation's shift of the whole row (by a small constant) is taken out
        tol = np.log((levels / 2 + 0.5) / (levels / 2 - 0.5)) / CODE_EXPONENT if levels else FP16_LOGP_TOL
        top_tol = -np.log(1 - 0.5 / levels) / CODE_EXPONENT if levels else FP16_LOGP_TOL
        assert lossless == bool(cfg.cache.get('lossless', False))
        live = {v: live_rows(cfg, model, table, views, v, rows) for v in range(cache.n_views)}
        # the teacher must see its crop, or this test could not see a wrong replay
        assert np.abs(live[0][0] - live[1][0]).max() > 0.1, f'{name}: teacher output does not depend on the crop'
        for v in range(cache.n_views):
            plane = cache.read_rows(name, v, rows)
            rec = reconstruct_rows(plane)
            for a, axis in enumerate('xy'):
                # the cache stores each row renormalised over the student's bins (the mass outside
                # the student crop is its own field), so the live row is renormalised the same way
                full, got = log_softmax(live[v][a]).astype(np.float32), rec[a]
                where = f'{name} view {v} axis {axis}'
                assert got.shape == full.shape, where
                # same argmax, up to near-ties that fp16 rounding (or the top code) may split
                peak = np.take_along_axis(full, got.argmax(-1)[..., None], -1)[..., 0]
                assert (peak >= full.max(-1) - top_tol - 1e-6).all(), f'{where}: argmax moved'
                if not levels:
                    assert (got.argmax(-1) == full.argmax(-1)).mean() >= 0.95, where
                # inside [argmax - 32, argmax + 32] (the whole row when lossless): fp16 rounding only
                bins = np.arange(full.shape[-1])
                near = np.abs(bins - full.argmax(-1)[..., None]) <= 32
                if not lossless:
                    start = plane[f'{axis}_start'].astype(int)[..., None]
                    near &= (bins >= start) & (bins < start + spec[f'window_{axis}'])
                if levels:
                    near &= full >= full.max(-1, keepdims=True) - np.log(2) / CODE_EXPONENT
                # student bins the teacher's native crop does not reach: probability 0 in both
                unseen = np.isneginf(full)
                in_window = near if lossless else (bins >= start) & (bins < start + spec[f'window_{axis}'])
                assert (np.exp(got[unseen & in_window]) == 0).all(), f'{where}: mass where the teacher cannot see'
                diff = got - full
                if levels:
                    keep = near & ~unseen
                    shift = np.sum(np.where(keep, diff, 0), -1, keepdims=True) / np.maximum(keep.sum(-1, keepdims=True), 1)
                    assert np.abs(shift).max() < 0.05, f'{where}: renormalisation shifts the row by {np.abs(shift).max():.3g}'
                    diff = diff - shift
                diff = np.abs(diff)[near & ~unseen].max()
                assert diff <= tol, f'{where}: max |log p| diff {diff:.3g} near the peak'
                np.testing.assert_allclose(rec[2 + a], live[v][2 + a], atol=2e-3, err_msg=f'{where} outside mass')
                kl = kl_at_temperature(full, got, 1.0)
                if lossless:
                    assert kl.max() < 1e-3, f'{where}: lossless KL(live || cache) at T=1 max {kl.max():.3g}'
                else:
                    # what the stated encoding loses on these very rows, and not more
                    own = kl_at_temperature(full, reconstruct(
                        *encode_axis(full, spec, axis),
                        full.shape[-1], levels), 1.0)
                    assert (kl <= own + 1e-3).all(), (
                        f'{where}: KL(live || cache) {kl.max():.4f} exceeds the window\'s own loss {own.max():.4f}')
        # negative control: the rows of view 1 are not the teacher's answer on view 0's crops
        other = reconstruct_rows(cache.read_rows(name, 1, rows))[0]
        assert np.abs(other - live[0][0]).max() > 0.1, f'{name}: views are indistinguishable'


def test_cache_fidelity_reports_kl(dumped, lossless_dumped):
    reports = {k: cache_fidelity(d['cfg'], samples=12, device='cpu')
               for k, d in (('window', dumped), ('lossless', lossless_dumped))}
    for name in dumped['cfg'].teachers:
        w, ll = reports['window']['teachers'][name], reports['lossless']['teachers'][name]
        for r in (w, ll):
            # coded rows may split a near-tie at the top code (test_contract2... bounds it)
            assert r['rows'] > 0 and r['argmax_agreement'] >= (0.5 if r['levels'] else 0.95)
            assert set(r['kl']) >= {'1.0'} and np.isfinite(r['kl']['1.0']['mean'])
            assert 0 <= r['kl']['1.0']['mean'] <= r['kl']['1.0']['max']
            assert 0 <= r['view'] < 2
        assert ll['kl']['1.0']['max'] < 1e-3, ll
        assert w['kl']['1.0']['mean'] > ll['kl']['1.0']['mean'], (w, ll)  # the window measurably loses
        assert w['window_x'] == min(dumped['cfg'].cache.window, ll['window_x'])  # lossless: all the bins
        assert ll['lossless'] and not w['lossless'] and w['levels'] == dumped['cfg'].cache.levels
        # also measured at the distribution the student is distilled towards (rows sharpened 10x),
        # which the codes are made for: within the stated 1e-3 there (at T = 1 they may lose more)
        kd = next(k for k in w['kl'] if abs(float(k) - kd_temperature(dumped['cfg'])) < 1e-9)
        assert w['kl'][kd]['mean'] <= 1e-3 < w['kl'][kd]['mean'] * 1e4, w['kl']


@pytest.fixture
def count_teacher_rows(monkeypatch):
    """Spy on teachers.targets.run_teacher (what the dump runs): rows run per teacher skeleton."""
    import teachers.targets as dump
    counts = {}
    real = dump.run_teacher

    def spy(model, crops, device, batch_size):
        counts[model.skeleton_name] = counts.get(model.skeleton_name, 0) + len(crops)
        return real(model, crops, device, batch_size)

    monkeypatch.setattr(dump, 'run_teacher', spy)
    return counts


def _skeleton(cfg, name):
    return load_teachers(cfg)[name].skeleton_name


def test_resume_does_only_pending_work_and_matches_one_shot(stage_env, dumped, count_teacher_rows):
    one_shot = teacher_arrays(cache_path(dumped['cfg'], 'train'))
    cfg = stage_env.cfg('resume')
    path = cache_path(cfg, 'train')
    n = len(split_instances(cfg, 'train'))
    v = int(cfg.views.num_views)
    sk = {name: _skeleton(cfg, name) for name in cfg.teachers}

    # 1. a dump that stopped after the first teacher
    dump_teachers(cfg, split='train', teacher_names=['coco'], device='cpu')
    assert count_teacher_rows == {sk['coco']: n * v}
    cache = open_cache(path)
    assert cache.pending_units('coco') == [] and len(cache.pending_units('mpii')) == len(cache.units())

    # 2. resumed with both: only the MPII teacher runs
    count_teacher_rows.clear()
    stats = dump_teachers(cfg, split='train', device='cpu')
    assert count_teacher_rows == {sk['mpii']: n * v}
    assert stats['coco']['rows'] == n * v and stats['mpii']['rows'] == n * v
    assert_same_arrays(teacher_arrays(path), one_shot, 'teacher-by-teacher dump vs one-shot dump')
    for name in cfg.teachers:  # the resumed call must not wipe the first call's fidelity numbers
        fid = open_cache(path).manifest['stats'][name]['fidelity']
        assert fid.get('rows', 0) > 0 and np.isfinite(fid['kl']['1.0']['mean']), (name, fid)

    # 3. a kill mid-unit: rows half written (garbage), marker not set -> redone, nothing else
    root = zarr.open_group(str(path), mode='r+')
    killed = {'mpii': [(0, 1), (1, 3)], 'coco': [(1, 0)]}
    rows_killed = {}
    chunk = int(cfg.cache.chunk_size)
    for name, units in killed.items():
        g = root['teachers'][name]
        for view, c in units:
            rows = slice(c * chunk, min((c + 1) * chunk, n))
            g['x_values'][view, rows] = 0
            g['y_start'][view, rows] = 0
            g['done'][view, c] = False
            rows_killed[sk[name]] = rows_killed.get(sk[name], 0) + rows.stop - rows.start
    assert open_cache(path).pending_units('mpii') == [(0, 1), (1, 3)]
    count_teacher_rows.clear()
    dump_teachers(cfg, split='train', device='cpu')
    assert count_teacher_rows == rows_killed
    assert_same_arrays(teacher_arrays(path), one_shot, 'dump resumed after a kill vs one-shot dump')
    assert all(open_cache(path).pending_units(t) == [] for t in cfg.teachers)
    # the manifest counts every row once and every unit's forward time, however many runs wrote them
    cache = open_cache(path)
    for name in cfg.teachers:
        st = cache.manifest['stats'][name]
        assert st['rows'] == n * v, (name, st)
        seconds = zarr.open_group(str(path), mode='r')['teachers'][name]['unit_seconds'][...]
        assert (seconds > 0).all() and st['forward_seconds'] == pytest.approx(float(seconds.sum()))


def test_refuses_cache_built_from_another_config(stage_env, dumped, tmp_path):
    src = cache_path(dumped['cfg'], 'train')
    root = tmp_path / 'cache'
    shutil.copytree(src, root / src.name)
    before = teacher_arrays(root / src.name)

    cfg = stage_env.cfg('refuse', **{'cache.root': str(root), 'views.num_views': 3})
    with pytest.raises(RuntimeError, match=r'views\.stages: cache has \[\{"num_views": 2'):
        dump_teachers(cfg, split='train', device='cpu')

    other = save_random_teacher(cfg.teachers.coco.config, tmp_path / 'other_coco.pth', seed=7,
                                images=[stage_env.data / 'mpii' / 'images' / '000000001.jpg'])
    cfg = stage_env.cfg('refuse', **{'cache.root': str(root), 'teachers.coco.checkpoint': str(other)})
    with pytest.raises(RuntimeError, match=r'teachers\.coco\.checkpoint_sha256') as err:
        dump_teachers(cfg, split='train', device='cpu')
    assert 'teachers.mpii' not in str(err.value)  # only the differing key is named
    assert_same_arrays(teacher_arrays(root / src.name), before, 'a refused cache must be left untouched')


def test_val_dump_runs_a_teacher_only_where_the_report_scores_it(stage_env, dumped, capsys):
    """Without a 21-joint truth (real data) a teacher's rows on the other dataset's val crops are never
    scored, so the val dump does not compute them; with the twins' truth it does (cross-twin PCK)."""
    from stages.report import teacher_predictions
    cfg = stage_env.cfg('val_no_truth', **{'datasets.coco.truth.val': '', 'datasets.mpii.truth.val': '',
                                           'cache.chunk_size': 4})  # 9 + 5 val instances: 4 chunks
    table = split_instances(cfg, 'val')
    dump_teachers(cfg, split='val', device='cpu')
    assert 'val: teacher coco runs on coco only' in capsys.readouterr().out
    cache = open_cache(cache_path(cfg, 'val'))
    for name in ('coco', 'mpii'):
        assert cache.teacher_spec(name)['datasets'] == [name]
        mine = cache.chunks_of(name)
        assert cache.pending_units(name) == [] and not mine.all()  # some chunks hold none of its rows
        assert cache.written_rows(name) < cache.n_views * len(table)
        assert (table.dataset[cache.rows_of(name)] == name).all()
    predictions = teacher_predictions(cfg, table)
    assert predictions['coco'][3] == ['coco'] and predictions['mpii'][3] == ['mpii']
    twins = open_cache(cache_path(stage_env.cfg('main'), 'val'))
    assert all(twins.teacher_spec(n)['datasets'] is None for n in twins.teacher_names)  # all rows


def _damage(file):
    """Flip one bit in the middle of a stored chunk (bit rot: its name and length unchanged)."""
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x10
    file.write_bytes(bytes(data))


def _copied_cache(stage_env, dumped, tmp_path, tag):
    """A config whose train cache is a copy of the main one (under tmp_path), and the copy's path."""
    src = cache_path(dumped['cfg'], 'train')
    cfg = stage_env.cfg(tag, **{'cache.root': str(tmp_path / 'cache')})
    shutil.copytree(src, cache_path(cfg, 'train'))
    return cfg, cache_path(cfg, 'train')


def test_dump_recomputes_units_failing_their_checksum(stage_env, dumped, tmp_path, count_teacher_rows, capsys):
    intact = teacher_arrays(cache_path(dumped['cfg'], 'train'))
    cfg, path = _copied_cache(stage_env, dumped, tmp_path, 'repair')
    n, chunk = len(split_instances(cfg, 'train')), int(cfg.cache.chunk_size)
    _damage(path / 'teachers/coco/x_values/c/1/2/0/0')
    _damage(path / 'teachers/mpii/done/c/0/3')
    with pytest.raises(CacheChunkError, match='teachers/coco/x_values: chunk c/1/2/0/0'):
        open_cache(path).read_view_plane('coco', 1)

    dump_teachers(cfg, split='train', device='cpu')
    units = 2 * math.ceil(n / chunk) * len(cfg.teachers)
    assert f'{path}: verified {units} units, 2 failed their checksum and are recomputed' in capsys.readouterr().out
    sk = {name: _skeleton(cfg, name) for name in cfg.teachers}
    assert count_teacher_rows == {sk['coco']: chunk, sk['mpii']: n - 3 * chunk}  # those two units only
    repaired = teacher_arrays(path)
    assert sorted(repaired) == sorted(intact)
    for key in intact:
        np.testing.assert_array_equal(repaired[key], intact[key], err_msg=key)  # bit for bit
    assert all(not r.failed for r in open_cache(path).verify().values())


def _cli(stage_env, cfg_root, *args):
    """cli.py in this process, on the stage world's config (its overrides as --cfg-options)."""
    from click.testing import CliRunner
    from cli import cli
    from tests.stages.conftest import BASE_CONFIG
    overrides = dict(stage_env.base_overrides, **{'cache.root': str(cfg_root)})
    options = [a for k, v in overrides.items() for a in ('--cfg-options', f'{k}={v!r}')]
    return CliRunner().invoke(cli, [*args, '--config', str(BASE_CONFIG), *options])


def test_cache_verify_counts_units_and_names_the_first_bad_chunk(stage_env, dumped, tmp_path):
    cfg, path = _copied_cache(stage_env, dumped, tmp_path, 'verify')
    n_units = 2 * math.ceil(len(split_instances(cfg, 'train')) / int(cfg.cache.chunk_size))
    r = _cli(stage_env, tmp_path / 'cache', 'cache-verify')
    assert r.exit_code == 0, r.output
    for name in cfg.teachers:
        assert f'{path}: {name}: {n_units} of {n_units} units done and verified, 0 failed' in r.stdout

    _damage(path / 'teachers/mpii/y_values/c/1/0/0/0')
    files = {f: f.read_bytes() for f in path.rglob('*') if f.is_file()}
    r = _cli(stage_env, tmp_path / 'cache', 'cache-verify', '--split', 'train')
    assert r.exit_code == 1 and 'Traceback' not in r.output
    assert f'{path}: mpii: {n_units} of {n_units} units done and verified, 1 failed' in r.stdout
    assert r.stderr.strip().splitlines() == [
        f'Error: {path}/teachers/mpii/y_values: chunk c/1/0/0/0 fails its checksum; '
        'run dump-teachers again to recompute it']
    assert {f: f.read_bytes() for f in path.rglob('*') if f.is_file()} == files  # read-only


def test_dump_refuses_a_cache_the_disk_cannot_hold(stage_env, monkeypatch):
    cfg = stage_env.cfg('full_disk')
    free = shutil._ntuple_diskusage(10 ** 12, 10 ** 12 - 10 ** 6, 10 ** 6)
    monkeypatch.setattr(shutil, 'disk_usage', lambda where: free)
    with pytest.raises(CacheError, match=r'train\.zarr: the cache needs up to .* and .* has 0\.00 GB '
                                         r'\(1,000,000 bytes\) free'):
        dump_teachers(cfg, split='train', device='cpu')
    assert not cache_path(cfg, 'train').parent.exists()  # nothing created, not even the cache root


def test_writer_processes_store_the_same_cache_as_the_writer_thread(stage_env, dumped):
    """dump_stage.writers > 1: units encoded and written by processes, in whatever order they finish,
    make the same cache as the one writer thread (the teachers' outputs are the same; so are the bytes)."""
    cfg = stage_env.cfg('writers', **{'dump_stage.writers': 2})
    dump_teachers(cfg, split='train', device='cpu')
    got, want = teacher_arrays(cache_path(cfg, 'train')), teacher_arrays(cache_path(dumped['cfg'], 'train'))
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert all(len(open_cache(cache_path(cfg, 'train')).pending_units(name)) == 0 for name in cfg.teachers)

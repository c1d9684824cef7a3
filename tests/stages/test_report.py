"""export-report on the tiny finished run (offline student + supervised baseline): every file and
section, the markdown table equal to metrics.json, the numbers equal to what training measured,
predictions.h5 and the exports."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from cache.store import open_cache
from tests.conftest import COCO_MPII as UNION21
from outputs.predictions import read_predictions_h5
from pipeline.run import cache_path, split_instances
from stages.report import export_report
from tests.stages.conftest import one_thread, read_log


@pytest.fixture(scope='module')
def report(offline_run, supervised_run, dumped):
    out = offline_run / 'report'
    with one_thread():
        page = export_report(offline_run, onnx=True, device='cpu')
    return dict(out=out, page=page, metrics=json.loads((out / 'metrics.json').read_text()),
                md=(out / 'report.md').read_text(), html=(out / 'report.html').read_text(),
                cfg=dumped['cfg'], run=offline_run)


def test_report_files_and_sections(report):
    out = report['out']
    assert report['page'] == out / 'report.html'
    for name in ('report.html', 'report.md', 'metrics.json', 'predictions.h5'):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    html, md = report['html'], report['md']
    for section in ('Results', 'What it cost', 'Training', 'Per joint', 'Examples', 'Exports'):
        assert re.search(rf'<h2>{section}\b', html), f'report.html lacks the {section!r} section'
    assert html.count('<img src="data:image/png;base64,') >= 3  # curves, per joint, examples
    for section in ('Results', 'Compute', 'Exports'):
        assert f'## {section}' in md, f'report.md lacks the {section!r} section'
    # the train split's annotation files, with what was skipped at load (nothing, on the twins)
    assert '- Input person_keypoints_train.json: ' in md and 'none skipped' in md


def _md_table(md: str) -> list[list[str]]:
    body = md.split('## Results', 1)[1].split('## ', 1)[0]
    lines = [line for line in body.splitlines() if line.startswith('|')]
    return [[c.strip() for c in line.strip('|').split('|')] for line in lines if not line.startswith('|---')]


def test_markdown_table_equals_metrics_json(report):
    table = report['metrics']['table']
    rows = _md_table(report['md'])
    assert rows[0] == table['columns']
    assert len(rows) - 1 == len(table['rows'])
    names = [r[0] for r in table['rows']]
    assert names == ['teacher coco', 'teacher mpii', 'baseline (no KD)', 'student (offline)']
    for got, want in zip(rows[1:], table['rows']):
        assert got[0] == want[0]
        for cell, value in zip(got[1:], want[1:]):
            assert (cell == '–') if value is None else float(cell) == pytest.approx(value, abs=0.05), (want[0], cell, value)
    # a teacher has no column for the joints it lacks; the union student has every column
    student = table['rows'][-1]
    assert all(v is not None for v in student[1:])
    assert any(v is None for v in table['rows'][0][1:])


def test_report_numbers_are_the_measured_ones(report):
    """Student metrics == training's val of the scored EMA weights (best.pth: the epoch that logged the
    best COCO AP); compute == the dump's stats."""
    m, cfg = report['metrics'], report['cfg']
    log = read_log(report['run'])
    best = [r for r in log if 'best' in r][-1]
    assert best['best']['value'] == max(r['val']['coco']['coco']['AP'] for r in log)
    assert m['checkpoints']['student (offline)'].startswith(f"best.pth (epoch {best['epoch']}, coco/AP ")
    final_val = best['val']
    student = m['entries']['student (offline)']
    for ds in cfg.datasets:
        assert student[ds]['pck_truth']['all'] == pytest.approx(final_val[ds]['pck_truth']['all'])
        assert student[ds]['pck_truth']['lacking'] == pytest.approx(final_val[ds]['pck_truth']['lacking'])
    assert student['mpii']['pckh@0.5']['mean'] == pytest.approx(final_val['mpii']['pckh@0.5']['mean'])
    assert student['coco']['coco']['AP'] == pytest.approx(final_val['coco']['coco']['AP'])
    stats = open_cache(cache_path(cfg, 'train')).manifest['stats']
    cost = m['cost']
    assert cost['teacher_seconds_paid_once'] == pytest.approx(sum(s['forward_seconds'] for s in stats.values()))
    assert cost['views'] == int(cfg.views.num_views) and cost['epochs'] == int(cfg.train.epochs)
    assert cost['train_instances'] == len(split_instances(cfg, 'train'))
    assert cost['cache_bytes'] > 0 and set(cost['fidelity']) == set(cfg.teachers)
    assert m['joints'] == list(UNION21.joint_names) and m['mode'] == 'offline'


def test_predictions_h5(report):
    table = split_instances(report['cfg'], 'val')
    p = read_predictions_h5(report['out'] / 'predictions.h5')
    n = len(table)
    assert p['keypoints'].shape == (n, 21, 2) and p['scores'].shape == (n, 21) and p['bbox'].shape == (n, 4)
    assert p['attrs']['joint_names'] == tuple(UNION21.joint_names)
    np.testing.assert_array_equal(p['instance_key'], table.instance_key)
    np.testing.assert_array_equal(p['dataset'], table.dataset)
    assert np.isfinite(p['keypoints']).all() and np.isfinite(p['scores']).all()


def test_exports(report):
    """mmpose export = the run's scored EMA weights (best.pth), loadable by our builder; ONNX matches PyTorch."""
    import torch
    from teachers.checkpoints import load_checkpoint, load_model, state_dict_from_checkpoint
    ex = report['metrics']['exports']
    ckpt, config = Path(ex['mmpose']['checkpoint']), Path(ex['mmpose']['config'])
    assert ckpt.is_file() and config.is_file()
    exported = state_dict_from_checkpoint(load_checkpoint(ckpt))
    ema = load_checkpoint(report['run'] / 'best.pth')['state_dict']
    assert set(exported) == set(ema) and all(torch.equal(exported[k], ema[k]) for k in ema)
    load_model(config, ckpt)  # the exported config builds the model the checkpoint fits
    onnx = ex['onnx']
    assert Path(onnx['path']).is_file() and Path(onnx['path']).stat().st_size > 0
    assert onnx['max_abs_diff'] < 1e-4, onnx


def test_report_refuses_a_val_cache_the_run_config_did_not_build(report, stage_env, tmp_path):
    """A teacher checkpoint changed after the val dump: its cached rows are stale, and the report says
    so instead of scoring the old teacher."""
    import shutil

    from tests.stages.conftest import save_random_teacher
    run = tmp_path / 'offline'
    shutil.copytree(report['run'], run, ignore=shutil.ignore_patterns('report'))
    other = save_random_teacher(report['cfg'].teachers.mpii.config, tmp_path / 'other_mpii.pth', seed=11,
                                images=[stage_env.data / 'mpii' / 'images' / '000000001.jpg'])
    cfg_file = run / 'pipeline_config.py'
    text = cfg_file.read_text()
    old = str(report['cfg'].teachers.mpii.checkpoint)
    assert old in text
    cfg_file.write_text(text.replace(old, str(other)))
    with pytest.raises(RuntimeError, match=r'val cache was not built from this run.s config '
                                           r'\(teachers\.mpii\.checkpoint_sha256'):
        export_report(run, out=tmp_path / 'report', device='cpu')
    assert not (tmp_path / 'report' / 'metrics.json').exists()


def test_report_legend_and_box_source_on_the_twins(report):
    """The twins have the full truth: their PCK columns are present and described; COCO val is scored
    on ground-truth boxes (det_file None in the config) and the report says so."""
    for text in (report['md'], report['html']):
        assert 'coco val boxes: ground-truth boxes from the annotation file.' in text
        assert 'full 21-joint truth of the synthetic twins' in text
    assert report['metrics']['boxes'] == {'coco': {'det_file': None}}


def test_box_sources_names_the_detection_file():
    from pipeline.config import resolve
    from stages.report import box_sources
    datasets = {'coco': {'type': 'coco', 'val': {'ann_file': 'a.json', 'det_file': 'dets/person.json',
                                                 'det_score_thr': 0.3}},
                'mpii': {'type': 'mpii', 'val': {'ann_file': 'm.json'}},
                'coco_train_only': {'type': 'coco', 'train': {'ann_file': 't.json'}}}
    assert box_sources(datasets) == {'coco': {'det_file': str(resolve('dets/person.json')), 'det_score_thr': 0.3}}
    datasets['coco']['val']['det_file'] = None
    assert box_sources(datasets) == {'coco': {'det_file': None}}


def _warnings(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith('warning:')]


NO_HEAD_BOXES_WARNING = ('warning: datasets.mpii.val has no head_boxes_file: PCKh on mpii is not computed '
                         '(the report says "not computed: no head-box file")')


def test_val_without_head_boxes_evaluates_no_pckh_says_why_and_the_val_dump_warns(stage_env, capsys):
    from stages.dump import dump_teachers
    from stages.evaluation import evaluate_predictions
    # '' not None: load_config drops None overrides (so the re-rooted path would stay)
    cfg = stage_env.cfg('no_head_boxes', **{'datasets.mpii.val.head_boxes_file': ''})
    table = split_instances(cfg, 'val')
    perfect = evaluate_predictions(cfg, table, table.keypoints, np.ones((len(table), 21), np.float32),
                                   np.ones(21, bool))
    assert perfect['mpii']['not_computed'] == {'pckh': 'no head-box file'} and 'pckh@0.5' not in perfect['mpii']
    assert perfect['coco']['coco']['AP'] > 0.9  # the other metrics are still computed
    capsys.readouterr()
    dump_teachers(cfg, split='val', device='cpu')
    assert _warnings(capsys.readouterr().out) == [NO_HEAD_BOXES_WARNING]
    main = stage_env.cfg('main')
    table = split_instances(main, 'val')  # with head sizes
    with_boxes = evaluate_predictions(main, table, table.keypoints, np.ones((len(table), 21), np.float32),
                                      np.ones(21, bool))
    assert 'not_computed' not in with_boxes['mpii'] and with_boxes['mpii']['pckh@0.5']['mean'] == 1.0


def test_report_without_head_boxes_keeps_the_pckh_columns_and_says_why(report, capsys, tmp_path):
    """The finished run's config with the MPII head-box file removed: the report warns once, and every
    model's PCKh cells read "not computed: no head-box file" instead of vanishing."""
    import shutil
    run = tmp_path / 'offline'
    shutil.copytree(report['run'], run, ignore=shutil.ignore_patterns('report'))
    cfg_file = run / 'pipeline_config.py'
    text, n = re.subn(r"head_boxes_file=\s*'[^']*'", 'head_boxes_file=None', cfg_file.read_text())
    assert n == 1
    cfg_file.write_text(text)
    capsys.readouterr()
    export_report(run, out=tmp_path / 'report', formats=('md', 'json'), device='cpu')
    assert _warnings(capsys.readouterr().out) == [NO_HEAD_BOXES_WARNING]
    table = json.loads((tmp_path / 'report' / 'metrics.json').read_text())['table']
    md = (tmp_path / 'report' / 'report.md').read_text()
    rows = _md_table(md)
    assert rows[0] == table['columns']
    for col in ('mpii PCKh@0.5', 'mpii PCKh@0.1'):
        i = table['columns'].index(col)
        assert [r[i] for r in rows[1:]] == ['not computed: no head-box file'] * len(table['rows'])
    assert 'datasets.mpii.val.head_boxes_file; the config has none' in md


def test_a_moved_run_folder_reports_the_same_numbers(report, tmp_path):
    """run.json names the run's config relative to the run folder: the finished work dir (student and
    baseline) moved elsewhere, its old place gone, still reports, with the same numbers."""
    import shutil
    work = report['run'].parent
    moved = tmp_path / 'elsewhere' / 'work'
    shutil.copytree(work, moved, ignore=shutil.ignore_patterns('report'))
    run = json.loads((moved / 'offline' / 'run.json').read_text())
    assert run['config'] == 'pipeline_config.py'
    assert str(work) not in (moved / 'offline' / 'run.json').read_text()
    away = work.with_name(work.name + '.away')
    work.rename(away)  # the old place is gone while the moved copy reports
    try:
        export_report(moved / 'offline', formats=('json',), device='cpu')
    finally:
        away.rename(work)
    metrics = json.loads((moved / 'offline' / 'report' / 'metrics.json').read_text())
    assert metrics['run'] == str(moved / 'offline')
    assert metrics['table'] == report['metrics']['table']
    assert metrics['entries'] == report['metrics']['entries']

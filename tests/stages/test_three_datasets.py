"""Three datasets, three teachers: dump -> train (tiny) -> report on COCO-, MPII- and AIC-style twins.

The union is derived from the configured datasets by joint name (data/skeletons.py); nothing in the
pipeline is sized for a fixed union, so the student, the cache, the metrics and the report follow it.
Tiny world as tests/stages/conftest.py's: small twins, random (BatchNorm-calibrated) teachers.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from mmengine.config import Config

from tests.conftest import ROOT
from tests.stages.conftest import _rerooted, one_thread, save_random_teacher

CONFIG = ROOT / 'pipeline' / 'configs' / 'demo_three_datasets.py'


@pytest.fixture(scope='module')
def three(tmp_path_factory):
    """The three-dataset config on tiny twins, its train and val caches dumped, a 1-epoch offline run."""
    from data.twins import make_synthetic
    from pipeline.config import load_config
    from stages.dump import dump_teachers
    from stages.train import train
    root = tmp_path_factory.mktemp('three')
    with one_thread():
        make_synthetic(root / 'synthetic', n_images=16, seed=0, styles=('coco', 'mpii', 'aic'))
        base = Config.fromfile(str(CONFIG))
        overrides = _rerooted(base.datasets.to_dict(), str(base.synthetic.out), str(root / 'synthetic'), 'datasets')
        calib = sorted((root / 'synthetic').glob('*/images/**/*.jpg'))[::4][:16]
        for i, (name, t) in enumerate(base.teachers.items()):
            ckpt = save_random_teacher(t.config, root / 'teachers' / f'{name}.pth', seed=200 + i, images=calib)
            overrides[f'teachers.{name}.checkpoint'] = str(ckpt)
        overrides.update({
            'work_dir': str(root / 'work'), 'cache.root': str(root / 'cache'), 'synthetic.out': str(root / 'synthetic'),
            'views.num_views': 1, 'cache.chunk_size': 16, 'dump_stage.batch_size': 16, 'dump_stage.device': 'cpu',
            'train.epochs': 1, 'train.batch_size': 16, 'train.val_interval': 1, 'train.checkpoint_interval': 1,
            'train.warmup_steps': 2})
        cfg = load_config(CONFIG, overrides)
        for split in ('train', 'val'):
            dump_teachers(cfg, split=split, device='cpu')
        run = train(cfg, mode='offline', device='cpu', num_workers=0)
    return dict(cfg=cfg, run=run, root=root)


def test_three_datasets_dump_train_report(three):
    from cache.store import open_cache
    from data.datasets import datasets_union
    from data.skeletons import AIC14, COCO17, MPII16, union_indices, union_mask
    from pipeline.run import cache_path, split_instances
    from stages.report import export_report
    from teachers.checkpoints import load_checkpoint

    cfg, run = three['cfg'], three['run']
    union = datasets_union(cfg.datasets)
    # the size is the derivation's: every joint name of the three skeletons once, AIC's neck as upper_neck
    names = set(COCO17.union_names) | set(MPII16.union_names) | set(AIC14.union_names)
    assert union.num_joints == len(names) and 'neck' not in union.joint_names
    assert union.joint_names[:17] == COCO17.joint_names  # the first dataset's joints first, in its order

    # stage 1: the cache says which joints it is in, and where each teacher's rows go
    for split in ('train', 'val'):
        cache = open_cache(cache_path(cfg, split))
        assert cache.manifest['joints'] == list(union.joint_names)
        assert sorted(cache.teacher_names) == ['aic', 'coco', 'mpii']
        assert cache.teacher_spec('aic')['union_joints'] == union_indices(AIC14, union).tolist()
    table = split_instances(cfg, 'val')
    assert set(table.dataset) == {'coco', 'mpii', 'aic'} and table.keypoints.shape[1:] == (union.num_joints, 2)
    np.testing.assert_array_equal(table.annotated[table.dataset == 'aic'][0], union_mask(AIC14, union))

    # stage 2: the student predicts the union and its checkpoint and mmpose config name the joints
    meta = load_checkpoint(run / 'last.pth')['meta']['dataset_meta']
    assert [meta['keypoint_id2name'][i] for i in range(meta['num_keypoints'])] == list(union.joint_names)
    mm = Config.fromfile(str(run / 'student_config.py'))
    assert [v['name'] for v in mm.dataset_info['keypoint_info'].values()] == list(union.joint_names)
    val = [json.loads(x) for x in (run / 'log.jsonl').read_text().splitlines()][-1]['val']
    assert set(val) == {'coco', 'mpii', 'aic'}

    # the report: each dataset's metric (OKS AP with AIC's sigmas for the AIC-format set), the union's joints
    with one_thread():
        export_report(run, formats=('html', 'md', 'json', 'h5'), device='cpu')
    metrics = json.loads((run / 'report' / 'metrics.json').read_text())
    assert metrics['joints'] == list(union.joint_names)
    assert metrics['joint_datasets'][union.index('upper_neck')] == ['mpii', 'aic']
    student = metrics['entries']['student (offline)']
    assert 0 <= student['aic']['coco']['AP'] <= 1 and 0 <= student['coco']['coco']['AP'] <= 1
    assert 'pckh@0.5' in student['mpii'] and len(student['aic']['pck_truth']['per_joint']) == union.num_joints
    teacher = metrics['entries']['teacher aic']
    assert 'AP' in teacher['aic']['coco'] and 'coco' not in teacher['coco']  # AIC's teacher has no face points
    columns = metrics['table']['columns']
    for col in ('coco AP', 'aic AP', 'mpii PCKh@0.5', f'aic PCK all {union.num_joints}'):
        assert col in columns
    md = (run / 'report' / 'report.md').read_text()
    assert 'aic AP' in md and 'teacher aic' in md
    assert f"Joints: the union of the coco, mpii, aic skeletons by joint name ({union.num_joints}): nose," in md
    html = (run / 'report' / 'report.html').read_text()
    assert f'student, {union.num_joints} joints' in html
    export = Config.fromfile(str(run / 'report' / 'export' / 'student_config.py'))
    assert [v['name'] for v in export.dataset_info['keypoint_info'].values()] == list(union.joint_names)


def test_three_datasets_aic_ap_uses_aic_sigmas(three):
    """The AIC-format set's AP is pycocotools' OKS AP with AIC's sigmas: with COCO's it differs."""
    from data.skeletons import AIC14, COCO17_SIGMAS
    from outputs.evaluate import coco_keypoint_eval
    from pipeline.config import resolve
    cfg = three['cfg']
    gt = json.loads(resolve(cfg.datasets.aic.val.ann_file).read_text())
    results = []
    for a in gt['annotations']:
        kp = np.array(a['keypoints'], np.float32).reshape(14, 3)
        kp[:, :2] += 2.0  # every joint 2 px off: AIC's tight sigmas punish it more than COCO's would
        results.append(dict(image_id=a['image_id'], category_id=1, keypoints=kp.reshape(-1).tolist(), score=1.0))
    with_aic = coco_keypoint_eval(resolve(cfg.datasets.aic.val.ann_file), results, sigmas=AIC14.sigmas)
    wider = coco_keypoint_eval(resolve(cfg.datasets.aic.val.ann_file), results,
                               sigmas=np.resize(COCO17_SIGMAS[5:], 14))
    assert with_aic['AP'] < wider['AP']


def test_coco_and_aic_train_a_student_on_their_19_joint_union(three, tmp_path):
    """Another derived size end to end: COCO + AIC is 19 joints (COCO's 17, head_top, upper_neck); a student
    whose head has the union's size trains on it, one with another size is refused naming its config."""
    from data.datasets import datasets_union
    from data.skeletons import COCO17
    from pipeline.config import load_config
    from stages.dump import dump_teachers
    from stages.train import train
    from teachers.checkpoints import load_checkpoint
    cfg3 = three['cfg']
    base_student = ROOT / 'pipeline' / 'configs' / 'models' / 'rtmpose-demo_union21_128x96.py'
    union = datasets_union({'coco': cfg3.datasets.coco, 'aic': cfg3.datasets.aic})
    assert union.joint_names == COCO17.joint_names + ('head_top', 'upper_neck')
    student = tmp_path / 'student.py'
    student.write_text(f"_base_ = ['{base_student}']\nmodel = dict(head=dict(out_channels={union.num_joints}))\n")
    keep = {k: v for k, v in cfg3.to_dict().items() if k in ('views', 'cache', 'dump_stage', 'train', 'synthetic')}

    def coco_aic(**more):  # the three-dataset config without MPII (fresh dicts: merging consumes _delete_)
        return load_config(CONFIG, {
            **_dotted(keep),
            'datasets': dict(_delete_=True, coco=cfg3.datasets.coco.to_dict(), aic=cfg3.datasets.aic.to_dict()),
            'teachers': dict(_delete_=True, coco=cfg3.teachers.coco.to_dict(), aic=cfg3.teachers.aic.to_dict()),
            'train.loss_weights': dict(_delete_=True, gt=0.4, coco=0.3, aic=0.3), 'evaluation.save_best': 'aic/AP',
            'student.config': str(student), 'work_dir': str(tmp_path / 'work'), 'cache.root': str(tmp_path / 'cache'),
            **more})

    cfg = coco_aic()
    assert list(cfg.datasets) == ['coco', 'aic'] and datasets_union(cfg.datasets).num_joints == 19
    with one_thread():
        dump_teachers(cfg, split='train', device='cpu')
        run = train(cfg, mode='offline', device='cpu', num_workers=0)
    meta = load_checkpoint(run / 'last.pth')['meta']['dataset_meta']
    assert meta['num_keypoints'] == 19 and meta['keypoint_id2name'][18] == 'upper_neck'
    val = [json.loads(x) for x in (run / 'log.jsonl').read_text().splitlines()][-1]['val']
    assert 'AP' in val['aic']['coco'] and len(val['coco']['pck_truth']['per_joint']) == 19

    wrong = tmp_path / 'student21.py'
    wrong.write_text(f"_base_ = ['{base_student}']\n")
    with pytest.raises(ValueError, match=r'student21\.py: the head predicts 21 joints but the skeleton .* has 19'):
        train(coco_aic(**{'student.config': str(wrong), 'work_dir': str(tmp_path / 'wrong')}), mode='supervised',
              device='cpu')


def _dotted(tree: dict, prefix: str = '') -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(_dotted(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out

import subprocess
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import COCO_MPII as UNION21
from outputs.export import (ONNX_INPUT, ONNX_OUTPUTS, check_onnx, complete_dataset_meta,
                            dataset_meta_from_skeleton, export_mmpose, export_onnx, write_mmpose_config)
from tests.conftest import MMPOSE_PYTHON, ROOT, require_mmpose_reference


# A tiny RTMPose in mmpose's config format (mmpose's own CSPNeXt: no _scope_='mmdet' needed).
TINY_RTMPOSE_CONFIG = textwrap.dedent('''
    codec = dict(type='SimCCLabel', input_size=(64, 64), sigma=(2.0, 2.0), simcc_split_ratio=2.0,
                 normalize=False, use_dark=False)
    model = dict(
        type='TopdownPoseEstimator',
        data_preprocessor=dict(type='PoseDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
        backbone=dict(type='CSPNeXt', arch='P5', expand_ratio=0.5, deepen_factor=0.167, widen_factor=0.125,
                      out_indices=(4, ), channel_attention=True, norm_cfg=dict(type='BN'),
                      act_cfg=dict(type='SiLU')),
        head=dict(type='RTMCCHead', in_channels=128, out_channels=21, input_size=codec['input_size'],
                  in_featuremap_size=(2, 2), simcc_split_ratio=codec['simcc_split_ratio'],
                  final_layer_kernel_size=7,
                  gau_cfg=dict(hidden_dims=32, s=16, expansion_factor=2, dropout_rate=0., drop_path=0.,
                               act_fn='SiLU', use_rel_bias=False, pos_enc=False),
                  loss=dict(type='KLDiscretLoss', use_target_weight=True, beta=10., label_softmax=True),
                  decoder=codec),
        test_cfg=dict(flip_test=True))
''')


class TinySimCC(nn.Module):
    """Same I/O contract as RTMPose: (N,3,H,W) -> (N,K,W*2), (N,K,H*2)."""

    def __init__(self, k=5, w=24, h=32):
        super().__init__()
        self.conv = nn.Conv2d(3, k, 3, stride=4, padding=1)
        tokens = (w // 4) * (h // 4)
        self.mlp = nn.Sequential(nn.Linear(tokens, 16), nn.SiLU())
        self.head_x = nn.Linear(16, w * 2)
        self.head_y = nn.Linear(16, h * 2)

    def forward(self, x):
        f = self.mlp(self.conv(x).flatten(2))
        return self.head_x(f), self.head_y(f)


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_onnx_round_trip_tiny_module(tmp_path):
    import onnx

    torch.manual_seed(0)
    model = TinySimCC().train()
    path = export_onnx(model, (24, 32), tmp_path / 'tiny.onnx')
    assert model.training, 'export must put the model back in the mode it found it'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['tiny.onnx']
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == [ONNX_INPUT]
    assert [o.name for o in graph.output] == list(ONNX_OUTPUTS)
    assert _dims(graph.input[0])[1:] == [3, 32, 24] and isinstance(_dims(graph.input[0])[0], str)
    # batch is dynamic; the bin axis is static (the joint axis may be symbolic after Flatten)
    assert _dims(graph.output[0])[0] == 'batch' and _dims(graph.output[0])[2] == 48
    assert _dims(graph.output[1])[0] == 'batch' and _dims(graph.output[1])[2] == 64
    assert check_onnx(path, model, n=3) < 1e-4


def test_check_onnx_detects_a_different_model(tmp_path):
    torch.manual_seed(0)
    path = export_onnx(TinySimCC(), (24, 32), tmp_path / 'tiny.onnx')
    assert check_onnx(path, TinySimCC(), n=2) > 1e-3


def _demo_student_config():
    """The demo pipeline's student model config (pipeline/configs/demo_synthetic.py: student.config)."""
    from mmengine.config import Config

    demo = ROOT / 'pipeline' / 'configs' / 'demo_synthetic.py'
    if demo.is_file():
        student = Config.fromfile(str(demo)).get('student', {}).get('config')
        if student and (ROOT / student).is_file():
            return ROOT / student
    configs = sorted((ROOT / 'pipeline' / 'configs' / 'models').glob('*demo*union21*.py'))
    return configs[0] if configs else None


def test_onnx_rtmpose_demo_config(tmp_path):
    from teachers.rtmpose import build_model
    config = _demo_student_config()
    assert config is not None, 'no demo student config'
    torch.manual_seed(0)
    model = build_model(config).eval()
    path = export_onnx(model, model.input_size, tmp_path / 'student.onnx')
    assert check_onnx(path, model, n=2) < 1e-4


def _fake_state_dict(k=21):
    g = torch.Generator().manual_seed(0)
    return {'backbone.stem.0.conv.weight': torch.randn(4, 3, 3, 3, generator=g),
            'backbone.stem.0.bn.num_batches_tracked': torch.tensor(3),
            'head.final_layer.weight': torch.randn(k, 128, 7, 7, generator=g),
            'head.mlp.0.g': torch.randn(1, generator=g)}


def test_export_mmpose_layout(tmp_path):
    from mmengine.config import Config

    cfg_path = tmp_path / 'tiny_rtmpose.py'
    cfg_path.write_text(TINY_RTMPOSE_CONFIG)
    meta = dataset_meta_from_skeleton(UNION21, 'coco_mpii_union21')
    sd = _fake_state_dict()
    written = export_mmpose(sd, cfg_path, tmp_path / 'export', meta, extra_meta={'run': 'demo'})
    pth, py = written['checkpoint'], written['config']
    assert sorted(p.name for p in pth.parent.iterdir()) == ['student.pth', 'student_config.py']
    ckpt = torch.load(pth, weights_only=True)  # plain types only: loads under the safe loader
    assert ckpt['meta']['dataset_meta'] == meta and ckpt['meta']['run'] == 'demo'
    assert sorted(ckpt['state_dict']) == sorted(sd)
    for k, v in sd.items():
        assert torch.equal(ckpt['state_dict'][k], v)
    cfg = Config.fromfile(str(py))
    assert cfg.default_scope == 'mmpose'
    assert cfg.model.type == 'TopdownPoseEstimator'
    assert cfg.model.head.out_channels == 21
    assert cfg.model.backbone.get('init_cfg') is None
    assert [s['type'] for s in cfg.test_dataloader.dataset.pipeline][:3] == [
        'LoadImage', 'GetBBoxCenterScale', 'TopdownAffine']
    assert list(cfg.test_dataloader.dataset.pipeline[2]['input_size']) == [64, 64]
    info = cfg.test_dataloader.dataset.metainfo
    assert info == cfg.dataset_info and len(info['keypoint_info']) == 21
    assert list(info['keypoint_info']) == list(range(21)), 'mmpose reads keypoint_info in dict order'
    assert [v['name'] for v in info['keypoint_info'].values()] == list(UNION21.joint_names)
    assert [tuple(v['link']) for v in info['skeleton_info'].values()] == [
        (UNION21.joint_names[a], UNION21.joint_names[b]) for a, b in UNION21.links]
    assert info['keypoint_info'][5]['swap'] == 'right_shoulder' and info['keypoint_info'][0]['swap'] == ''
    assert info['keypoint_info'][11]['type'] == 'lower' and info['keypoint_info'][20]['type'] == 'upper'
    # the flip permutation and names agree with the skeleton
    assert meta['flip_indices'] == UNION21.flip_indices.tolist()
    assert [meta['keypoint_id2name'][i] for i in range(21)] == list(UNION21.joint_names)
    np.testing.assert_allclose(meta['sigmas'], UNION21.sigmas)


def test_export_mmpose_demo_config_drops_mmdet_scope(tmp_path):
    from mmengine.config import Config

    config = _demo_student_config()
    assert config is not None, 'no demo student config'
    src = Config.fromfile(str(config))
    k = src.model.head.out_channels
    sd = _fake_state_dict(k)
    sd['head.final_layer.weight'] = torch.zeros(k, src.model.head.in_channels, 7, 7)
    meta = dataset_meta_from_skeleton({17: 'coco17', 16: 'mpii16', 21: UNION21}[k])
    py = export_mmpose(sd, config, tmp_path / 'export', meta)['config']
    cfg = Config.fromfile(str(py))
    assert '_scope_' not in cfg.model.backbone
    assert cfg.model.backbone.type == 'CSPNeXt'
    assert cfg.model.head.input_size == src.model.head.input_size


def test_export_mmpose_refuses_mismatches(tmp_path):
    cfg_path = tmp_path / 'tiny_rtmpose.py'
    cfg_path.write_text(TINY_RTMPOSE_CONFIG)
    meta17 = dataset_meta_from_skeleton('coco17')
    with pytest.raises(ValueError, match='out_channels is 21'):
        export_mmpose(_fake_state_dict(17), cfg_path, tmp_path / 'a', meta17)
    with pytest.raises(ValueError, match="'student.head"):
        export_mmpose({'student.head.x': torch.zeros(1)}, cfg_path, tmp_path / 'b',
                      dataset_meta_from_skeleton(UNION21))
    assert not (tmp_path / 'a').exists() or not list((tmp_path / 'a').iterdir())


def test_partial_dataset_meta_is_completed():
    full = dataset_meta_from_skeleton(UNION21)
    partial = {k: full[k] for k in ('dataset_name', 'num_keypoints', 'keypoint_id2name', 'flip_indices', 'sigmas',
                                    'skeleton_links')}
    partial['keypoint_id2name'] = {str(i): n for i, n in partial['keypoint_id2name'].items()}  # as from json
    assert complete_dataset_meta(partial) == full
    with pytest.raises(ValueError, match='sigmas'):
        complete_dataset_meta({k: v for k, v in partial.items() if k != 'sigmas'})


def test_write_mmpose_config_takes_the_skeleton_from_the_config(tmp_path):
    from mmengine.config import Config

    cfg_path = tmp_path / 'tiny_rtmpose.py'
    cfg_path.write_text("skeleton = 'union'\n" + TINY_RTMPOSE_CONFIG)
    # a union's joints depend on the run's datasets: given as dataset_meta (the train stage does)
    py = write_mmpose_config(cfg_path, tmp_path / 'out' / 'student_config.py', dataset_meta_from_skeleton(UNION21))
    cfg = Config.fromfile(str(py))
    names = [v['name'] for v in cfg.test_dataloader.dataset.metainfo['keypoint_info'].values()]
    assert names == list(UNION21.joint_names)
    cfg_path.write_text("skeleton = 'coco17'\n" + TINY_RTMPOSE_CONFIG.replace('out_channels=21', 'out_channels=17'))
    cfg = Config.fromfile(str(write_mmpose_config(cfg_path, tmp_path / 'out' / 'coco.py')))
    assert len(cfg.test_dataloader.dataset.metainfo['keypoint_info']) == 17
    cfg_path.write_text(TINY_RTMPOSE_CONFIG)  # no skeleton: no metainfo, still a runnable config
    cfg = Config.fromfile(str(write_mmpose_config(cfg_path, tmp_path / 'out' / 'plain.py')))
    assert 'metainfo' not in cfg.test_dataloader.dataset and cfg.default_scope == 'mmpose'


MMPOSE_CHECK = textwrap.dedent('''
    import sys, torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmpose')
    import mmpose.models
    from mmpose.registry import MODELS
    from mmengine.runner import load_checkpoint
    from outputs.export import export_mmpose, dataset_meta_from_skeleton
    from data.skeletons import derive_union
    UNION21 = derive_union(('coco', 'mpii'))
    cfg_path, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    original = MODELS.build(Config.fromfile(cfg_path).model).eval()
    export_mmpose(original.state_dict(), cfg_path, out, dataset_meta_from_skeleton(UNION21))
    cfg = Config.fromfile(out + '/student_config.py')
    rebuilt = MODELS.build(cfg.model).eval()
    sd = torch.load(out + '/student.pth', weights_only=True)['state_dict']
    rebuilt.load_state_dict(sd, strict=True)
    ckpt = load_checkpoint(rebuilt, out + '/student.pth', map_location='cpu')  # what init_model calls
    meta = ckpt['meta']['dataset_meta']
    assert meta['num_keypoints'] == 21
    # the config's metainfo parses (mmpose's own parser) back to the checkpoint's dataset_meta
    # loaded by path: importing mmpose.datasets pulls in torchvision, which breaks this environment
    import importlib.util, os
    utils_py = os.path.join(os.path.dirname(mmpose.models.__file__), '..', 'datasets', 'datasets', 'utils.py')
    spec = importlib.util.spec_from_file_location('mmpose_dataset_utils', utils_py)
    mm_utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mm_utils)
    parse_pose_metainfo = mm_utils.parse_pose_metainfo
    parsed = parse_pose_metainfo(cfg.test_dataloader.dataset.metainfo)
    for key, value in parsed.items():
        got = meta[key]
        if hasattr(value, 'tolist'):
            value = value.tolist()
        if key in ('flip_pairs', 'skeleton_links'):
            value = [list(v) for v in value]
        if key == 'sigmas' or key == 'dataset_keypoint_weights':
            assert max(abs(a - b) for a, b in zip(value, got)) < 1e-6, key
        else:
            assert value == got, (key, value, got)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a = original(x, None, mode='tensor')
        b = rebuilt(x, None, mode='tensor')
    print('max_diff', max(float((p - q).abs().max()) for p, q in zip(a, b)))
''')


@pytest.mark.parity
def test_export_mmpose_loads_in_mmpose(tmp_path):
    """The exported pair builds and loads strictly in the mmpose reference environment."""
    require_mmpose_reference()
    cfg_path = tmp_path / 'tiny_rtmpose.py'
    cfg_path.write_text(TINY_RTMPOSE_CONFIG)
    script = tmp_path / 'check.py'
    script.write_text(MMPOSE_CHECK)
    run = subprocess.run([str(MMPOSE_PYTHON), str(script), str(cfg_path), str(tmp_path / 'export')],
                         capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={'PYTHONPATH': str(ROOT), 'PATH': '/usr/bin:/bin'})
    assert run.returncode == 0, run.stderr[-3000:]
    diff = float(run.stdout.split('max_diff')[-1])
    assert diff == 0.0

import collections
import os

import numpy as np
import pytest
import torch
from torch import nn

from teachers.checkpoints import (CheckpointError, dataset_meta_from_checkpoint, load_checkpoint,
                                  load_model, load_state_dict_strict, save_checkpoint,
                                  state_dict_from_checkpoint)

DEMO_CONFIG = 'pipeline/configs/models/rtmpose-demo_union21_128x96.py'


class _Tiny(nn.Module):
    def __init__(self, width=3):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 1)
        self.bn = nn.BatchNorm2d(width)


class _RunsShell:
    """Unpickling this would call os.system; a safe loader must refuse before calling it."""

    def __reduce__(self):
        return os.system, ('echo this-must-not-run',)


def _randomised(model):
    """Perturb every float tensor (BN statistics included) so a load that silently kept the
    initial values would be caught; variances stay positive."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith('running_var'):
                t.uniform_(0.5, 1.5)
            elif t.is_floating_point():
                t.add_(0.1 * torch.randn_like(t))
    return model


def test_round_trip_keeps_weights_and_numpy_meta(tmp_path):
    src = _randomised(_Tiny())
    meta = {'dataset_meta': {'sigmas': np.array([0.1, 0.2], np.float32), 'num_keypoints': 2,
                             'flip_indices': [1, 0]}, 'epoch': np.int64(3)}
    path = save_checkpoint(tmp_path / 'sub' / 'w.pth', src.state_dict(), meta)
    assert sorted(os.listdir(path.parent)) == ['w.pth']  # no temp file left behind
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt['state_dict'], collections.OrderedDict)
    dst = _Tiny()
    load_state_dict_strict(dst, state_dict_from_checkpoint(ckpt))
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)
    np.testing.assert_array_equal(dataset_meta_from_checkpoint(ckpt)['sigmas'],
                                  meta['dataset_meta']['sigmas'])
    assert ckpt['meta']['epoch'] == 3


def test_mmengine_runner_layout_loads(tmp_path):
    """message_hub (HistoryBuffer + numpy scalars), optimizer and scheduler state, EMA swap:
    the entries mmengine's Runner.save_checkpoint writes, saved by mmengine itself."""
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint as mmengine_save
    model = _randomised(_Tiny())
    hub = MessageHub.get_instance('test_checkpoints')
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('iter', 3)
    hub.update_info('coco/AP', np.float64(0.7))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.bn(model.conv(torch.randn(2, 3, 4, 4))).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LinearLR(opt)
    ema = collections.OrderedDict((k, v + 1) for k, v in model.state_dict().items())
    raw = collections.OrderedDict([('steps', torch.tensor(7))] +
                                  [(f'module.{k}', v) for k, v in model.state_dict().items()])
    path = str(tmp_path / 'runner.pth')
    mmengine_save({'meta': {'dataset_meta': {'sigmas': np.ones(2, np.float32)}, 'seed': 21},
                   'state_dict': ema, 'ema_state_dict': raw, 'message_hub': hub.state_dict(),
                   'optimizer': opt.state_dict(), 'param_schedulers': [sched.state_dict()]}, path)
    ckpt = load_checkpoint(path)
    assert ckpt['message_hub']['log_scalars']['train/loss'].mean() == 0.5
    # mmengine's EMAHook keeps the average in state_dict and the raw weights in ema_state_dict
    averaged = state_dict_from_checkpoint(ckpt, use_ema=True)
    trained = state_dict_from_checkpoint(ckpt, use_ema=False)
    assert list(trained) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(trained[k], v) and torch.equal(averaged[k], v + 1)


def test_student_prefix_is_selected_and_stripped():
    sd = collections.OrderedDict([('teacher.conv.weight', torch.zeros(1)),
                                  ('student.conv.weight', torch.ones(1)),
                                  ('student.bn.bias', torch.ones(2))])
    out = state_dict_from_checkpoint({'meta': {}, 'state_dict': sd})
    assert list(out) == ['conv.weight', 'bn.bias']
    assert list(state_dict_from_checkpoint({'model.a': torch.ones(1)})) == ['a']  # bare state dict


def test_strict_load_names_key_and_both_shapes():
    sd = _Tiny(width=3).state_dict()
    with pytest.raises(ValueError, match=r"'conv\.weight'.*model shape \(4, 3, 1, 1\).*"
                                         r"checkpoint shape \(3, 3, 1, 1\)"):
        load_state_dict_strict(_Tiny(width=4), sd)
    missing = {k: v for k, v in sd.items() if k != 'bn.running_var'}
    with pytest.raises(ValueError, match=r"missing key 'bn\.running_var': model shape \(3,\)"):
        load_state_dict_strict(_Tiny(), missing)
    with pytest.raises(ValueError, match=r"unexpected key 'extra': .*checkpoint shape \(2,\)"):
        load_state_dict_strict(_Tiny(), {**sd, 'extra': torch.zeros(2)})


def test_disallowed_global_is_refused_with_file_and_name(tmp_path, capfd):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {'x': _RunsShell()}}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert f'{os.system.__module__}.system' in str(info.value)
    assert 'this-must-not-run' not in capfd.readouterr().out


def test_getattr_stand_in_permits_only_history_buffer_statistics(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer

    class _Sneaky:
        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    path = tmp_path / 'sneaky.pth'
    torch.save({'state_dict': {}, 'meta': {'x': _Sneaky()}}, path)
    with pytest.raises(CheckpointError, match='not allowed'):
        load_checkpoint(path)


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint(tmp_path / 'nope.pth')
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='bad.pth'):
        load_checkpoint(bad)


def test_load_model_round_trip(tmp_path):
    from teachers.rtmpose import build_model
    src = _randomised(build_model(DEMO_CONFIG))
    path = save_checkpoint(tmp_path / 'demo.pth', src.state_dict(), {'note': 'test'})
    model = load_model(DEMO_CONFIG, path)
    assert not model.training
    x = torch.randn(1, 3, 128, 96)
    src.eval()
    with torch.no_grad():
        for got, want in zip(model(x), src(x)):
            assert torch.equal(got, want)
    with pytest.raises(CheckpointError, match='does not fit'):
        load_model('pipeline/configs/models/rtmpose-demo_coco17_128x96.py', path)


def test_init_backbone_loads_the_backbone_only_and_refuses_a_misfit(tmp_path):
    import pytest
    import torch
    from teachers.checkpoints import CheckpointError, init_backbone, save_checkpoint
    from teachers.rtmpose import build_model
    coco = build_model('pipeline/configs/models/rtmpose-demo_coco17_128x96.py')
    with torch.no_grad():
        for p in coco.parameters():
            p.add_(1.0)
    path = save_checkpoint(tmp_path / 'coco.pth', coco.state_dict())
    mpii = build_model('pipeline/configs/models/rtmpose-demo_mpii16_128x128.py')
    head_before = {k: v.clone() for k, v in mpii.head.state_dict().items()}
    init_backbone(mpii, path)
    for k, v in coco.backbone.state_dict().items():
        assert torch.equal(mpii.backbone.state_dict()[k], v), k
    for k, v in mpii.head.state_dict().items():
        assert torch.equal(v, head_before[k]), k
    student = build_model('pipeline/configs/models/rtmpose-demo_union21_128x96.py')  # half the width
    with pytest.raises(CheckpointError, match=r'coco\.pth: its backbone does not fit'):
        init_backbone(student, path)


def test_widened_backbone_computes_the_same_features_duplicated(tmp_path):
    """A half-width backbone widened into the teacher network gives the narrow backbone's feature map
    with every channel repeated in place (eval mode, BN statistics randomised so they matter)."""
    import torch
    from teachers.checkpoints import CheckpointError, init_backbone, save_checkpoint
    from teachers.rtmpose import build_model
    torch.manual_seed(0)
    narrow = build_model('pipeline/configs/models/rtmpose-demo-s_coco17_128x96.py').eval()
    with torch.no_grad():
        for name, b in narrow.named_buffers():
            if name.endswith('running_mean'):
                b.normal_(0, 0.1)
            elif name.endswith('running_var'):
                b.uniform_(0.5, 2.0)
    path = save_checkpoint(tmp_path / 'narrow.pth', narrow.state_dict())
    wide = build_model('pipeline/configs/models/rtmpose-demo_coco17_128x96.py').eval()
    init_backbone(wide, path, widen=True)
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        want = narrow.backbone(x)[-1].repeat_interleave(2, dim=1)
        got = wide.backbone(x)[-1]
    assert got.shape == want.shape and want.abs().max() > 0.1
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()
    with pytest.raises(CheckpointError, match='cannot be widened'):
        init_backbone(narrow, save_checkpoint(tmp_path / 'wide.pth', wide.state_dict()), widen=True)

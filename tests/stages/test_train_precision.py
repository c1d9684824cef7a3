"""The GPU's precision path of the training step (bf16 autocast, channels_last), forced on the CPU so that
it is not first run on a GPU: the convolutions see channels_last inputs and compute in bf16, the loss is
finite and differs from the fp32 run's, and the product's default on CPU stays fp32."""
from __future__ import annotations

import math

import torch

import stages.train as train_stage
from stages.train import precision, train
from tests.stages.conftest import read_log


def test_precision_is_the_configs_on_cuda_and_fp32_on_cpu():
    tc = dict(amp=True, channels_last=True)
    assert precision(tc, torch.device('cuda')) == (True, True)
    assert precision(tc, torch.device('cpu')) == (False, False)
    assert precision(dict(amp=False, channels_last=True), torch.device('cuda')) == (False, True)


def test_bf16_autocast_and_channels_last_train_on_cpu(stage_env, dumped, tmp_path, monkeypatch):
    cfg = stage_env.cfg('main', **{'train.epochs': 1})
    seen = []
    real_build = train_stage.build_model

    def build_with_probe(*args, **kwargs):
        model = real_build(*args, **kwargs)
        conv = model.backbone.stem[0].conv

        def probe(module, inputs, output):
            if module.training:  # the train step, not the EMA model's validation
                seen.append((inputs[0].is_contiguous(memory_format=torch.channels_last), output.dtype))
        conv.register_forward_hook(probe)
        return model

    monkeypatch.setattr(train_stage, 'build_model', build_with_probe)
    fp32 = read_log(train(cfg, mode='offline', device='cpu', num_workers=0, work_dir=tmp_path / 'fp32'))
    assert seen and set(seen) == {(False, torch.float32)}
    seen.clear()
    monkeypatch.setattr(train_stage, 'precision', lambda tc, device: (True, True))
    bf16 = read_log(train(cfg, mode='offline', device='cpu', num_workers=0, work_dir=tmp_path / 'bf16'))
    assert seen and set(seen) == {(True, torch.bfloat16)}
    assert math.isfinite(bf16[-1]['loss_total']) and bf16[-1]['loss_total'] != fp32[-1]['loss_total']
    assert abs(bf16[-1]['loss_total'] - fp32[-1]['loss_total']) < 0.05 * fp32[-1]['loss_total']

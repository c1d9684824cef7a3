"""TensorBoard events of a training run: the expected tags, and a run killed mid-epoch and resumed logs
every step once, continuing from its checkpoint."""
from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import outputs.tensorboard as board_module
import stages.train as train_stage
from pipeline.run_folder import RunFolder
from stages.train import train


class Killed(Exception):
    pass


def _scalars(run_dir) -> dict:
    acc = EventAccumulator(str(RunFolder(run_dir).tensorboard), size_guidance={'scalars': 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()['scalars']}


def test_straight_run_writes_every_term_lr_grad_norm_val_and_teacher_saving(offline_run):
    scalars = _scalars(offline_run)
    epoch_steps = [4, 8]  # 60 instances at 16: four steps an epoch, two epochs
    for tag in ('train/loss_gt', 'train/loss_coco', 'train/loss_mpii', 'train/loss_total', 'train/lr',
                'train/grad_norm', 'epoch/loss_total', 'epoch/loss_gt', 'epoch/images_per_s',
                'cost/teacher_seconds_saved'):
        assert [s for s, _ in scalars[tag]] == epoch_steps, tag
    val_tags = [t for t in scalars if t.startswith('val/')]
    assert val_tags and all([s for s, _ in scalars[t]] == epoch_steps for t in val_tags)  # val_interval 1
    assert all(0 <= v <= 100 for t in val_tags for _, v in scalars[t])  # in %
    saved = [v for _, v in scalars['cost/teacher_seconds_saved']]
    assert saved[1] > saved[0]  # every epoch saves the teachers' forward time again


def test_val_metrics_are_printed_at_each_val_epoch(stage_env, dumped, tmp_path, capsys):
    cfg = stage_env.cfg('main', **{'train.val_interval': 2, 'train.epochs': 3})
    train(cfg, mode='supervised', device='cpu', num_workers=0, work_dir=tmp_path / 'sup')
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith('[supervised] val:')]
    assert len(printed) == 2 and '/' in printed[0]  # epochs 2 and 3 (the last); not 1


def test_resumed_run_continues_the_steps_of_the_killed_one(offline_run, dumped, tmp_path, monkeypatch):
    monkeypatch.setattr(train_stage, 'LOG_EVERY', 1)
    real_step = board_module.TrainBoard.step

    def step_then_die(self, step, *args):
        real_step(self, step, *args)
        if step == 6:  # mid epoch 2: steps 5 and 6 are logged after the epoch-1 checkpoint
            self.writer.flush()
            raise Killed

    monkeypatch.setattr(board_module.TrainBoard, 'step', step_then_die)
    work = tmp_path / 'killed'
    with pytest.raises(Killed):
        train(dumped['cfg'], mode='offline', work_dir=work, device='cpu', num_workers=0)
    monkeypatch.setattr(board_module.TrainBoard, 'step', real_step)
    train(dumped['cfg'], mode='offline', resume=True, work_dir=work, device='cpu', num_workers=0)
    scalars = _scalars(work)
    assert [s for s, _ in scalars['train/loss_total']] == list(range(1, 9))  # each step once
    assert [s for s, _ in scalars['epoch/loss_total']] == [4, 8]
    straight = dict(_scalars(offline_run)['epoch/loss_total'])
    assert dict(scalars['epoch/loss_total']) == straight  # the resumed run is the straight run

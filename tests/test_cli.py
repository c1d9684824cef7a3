import subprocess
import sys

import click
import pytest

from tests.conftest import ROOT


def run(*args):
    return subprocess.run([sys.executable, str(ROOT / 'cli.py'), *args], capture_output=True, text=True, cwd=ROOT)


def test_help_lists_the_product_commands():
    r = run('--help')
    assert r.returncode == 0, r.stderr
    for cmd in ('dump-teachers', 'train-student', 'export-report', 'make-synthetic', 'demo'):
        assert cmd in r.stdout


def test_each_command_has_help():
    for cmd in ('dump-teachers', 'train-student', 'export-report', 'make-synthetic', 'cache-fidelity', 'cache-verify'):
        r = run(cmd, '--help')
        assert r.returncode == 0 and '--' in r.stdout, (cmd, r.stderr)


def test_bad_config_path_is_a_clear_error():
    r = run('dump-teachers', '--config', 'does/not/exist.py')
    assert r.returncode != 0 and 'does not exist' in r.stderr


def test_cfg_options_are_parsed_as_literals_and_applied():
    from pipeline.config import ConfigError, load_config, parse_cfg_options
    opts = parse_cfg_options(['train.epochs=3', 'name=my run', "views.policy='none'", 'train.amp=False'])
    assert opts == {'train.epochs': 3, 'name': 'my run', 'views.policy': 'none', 'train.amp': False}
    cfg = load_config(ROOT / 'pipeline/configs/demo_synthetic.py', opts)
    assert cfg.train.epochs == 3 and cfg.name == 'my run' and cfg.train.amp is False
    cfg = load_config(ROOT / 'pipeline/configs/demo_synthetic.py',
                      parse_cfg_options(['datasets.mpii.val.head_boxes_file=None']))
    assert cfg.datasets.mpii.val.head_boxes_file is None  # None is a value, not "no override"
    import pytest
    with pytest.raises(ConfigError, match='expected KEY=VALUE'):
        parse_cfg_options(['train.epochs'])


def test_every_config_command_takes_cfg_options():
    for cmd in ('dump-teachers', 'train-student', 'cache-fidelity', 'cache-verify', 'demo', 'demo-teachers', 'predict'):
        r = run(cmd, '--help')
        assert r.returncode == 0 and '--cfg-options' in r.stdout, (cmd, r.stderr)


def _train_config(monkeypatch, *args):
    """The pipeline config `train-student ARGS` hands to train (train itself not run)."""
    from click.testing import CliRunner
    from cli import cli
    seen = {}
    monkeypatch.setattr('stages.train.train', lambda cfg, **kw: seen.update(cfg=cfg))
    r = CliRunner().invoke(cli, ['train-student', '--config', str(ROOT / 'pipeline/configs/demo_synthetic.py'), *args])
    assert r.exit_code == 0, r.output
    return seen['cfg']


@pytest.mark.parametrize('args', [
    ['--cfg-options', 'train.epochs=1', 'train.overlap=mean', '--mode', 'supervised'],  # mmengine: one flag, nargs='+'
    ['--cfg-options', 'train.epochs=1', '--cfg-options', 'train.overlap=mean'],  # the flag repeated
    ['--cfg-options=train.epochs=1', 'train.overlap=mean'],
])
def test_cfg_options_take_several_overrides_after_one_flag_or_repeated(monkeypatch, args):
    cfg = _train_config(monkeypatch, *args)
    assert cfg.train.epochs == 1 and cfg.train.overlap == 'mean'


def test_cfg_options_end_at_the_next_option_or_a_word_without_equals():
    from cli import spread_cfg_options
    assert spread_cfg_options(['x', '--cfg-options', 'a=1', 'b=[1, 2]', '--mode', 'c=3']) == \
        ['x', '--cfg-options', 'a=1', '--cfg-options', 'b=[1, 2]', '--mode', 'c=3']
    # predict's image argument may follow the overrides
    assert spread_cfg_options(['predict', '--cfg-options', 'a=1', 'b=2', 'img.jpg', 'c=3']) == \
        ['predict', '--cfg-options', 'a=1', '--cfg-options', 'b=2', 'img.jpg', 'c=3']


def test_predict_hands_its_cfg_options_to_the_model_config(monkeypatch, tmp_path):
    from click.testing import CliRunner
    from cli import cli
    seen = {}
    monkeypatch.setattr('stages.predict.load_predictor', lambda *a: (seen.update(args=a), False, None))
    monkeypatch.setattr('stages.predict.predict_images', lambda *a, **kw: None)
    model_cfg = ROOT / 'pipeline/configs/models/rtmpose-demo_union21_128x96.py'
    r = CliRunner().invoke(cli, ['predict', str(model_cfg), '--config', str(model_cfg), '--checkpoint', str(model_cfg),
                                 '--out', str(tmp_path), '--cfg-options', 'model.test_cfg.flip_test=False',
                                 'codec.sigma=[5.0, 5.0]'])
    assert r.exit_code == 0, r.output
    assert seen['args'][-1] == {'model.test_cfg.flip_test': False, 'codec.sigma': [5.0, 5.0]}


def test_an_error_after_a_progress_bar_starts_its_own_line():
    from click.testing import CliRunner
    from tqdm import tqdm
    from cli import PipelineCli

    @click.group(cls=PipelineCli)
    def group():
        pass

    @group.command()
    def fails():
        bar = tqdm(total=10, file=sys.stderr, desc='dump train')  # left open by the error, as dump's bar is
        bar.update(3)
        raise ValueError('x.json: broken')

    r = CliRunner().invoke(group, ['fails'])
    assert r.exit_code == 1
    assert 'dump train:  30%' in r.stderr and '\nError: x.json: broken\n' in r.stderr, repr(r.stderr)


def test_an_expected_error_is_one_line_naming_the_file(tmp_path):
    cfg = ROOT / 'pipeline/configs/demo_synthetic.py'
    r = run('dump-teachers', '--config', str(cfg), '--split', 'val', '--cfg-options',
            f'datasets.coco.val.ann_file={tmp_path / "nope.json"}')
    assert r.returncode == 1, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert lines[-1] == f'Error: COCO annotation file not found: {tmp_path / "nope.json"}', r.stderr
    assert 'Traceback' not in r.stderr
    r = run('--debug', 'dump-teachers', '--config', str(cfg), '--split', 'val', '--cfg-options',
            f'datasets.coco.val.ann_file={tmp_path / "nope.json"}')
    assert r.returncode != 0 and 'Traceback' in r.stderr


def test_a_text_file_given_as_a_checkpoint_is_named(tmp_path):
    import pytest
    from teachers.checkpoints import CheckpointError, load_checkpoint
    p = tmp_path / 'teacher.pth'
    p.write_text('this is not a checkpoint\n')
    with pytest.raises(CheckpointError, match=r'teacher\.pth: not a readable torch checkpoint'):
        load_checkpoint(p)


def test_written_files_get_the_umask_permissions(tmp_path):
    import os
    import torch
    from data.files import atomic_write_text
    from teachers.checkpoints import save_checkpoint
    old = os.umask(0o022)
    try:
        assert os.stat(atomic_write_text(tmp_path / 'report.md', 'x')).st_mode & 0o777 == 0o644
        assert os.stat(save_checkpoint(tmp_path / 'a.pth', {'w': torch.zeros(1)})).st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_a_configured_cuda_device_falls_back_but_an_asked_one_does_not(capsys):
    import pytest
    import torch
    from pipeline.run import pick_device
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA: the fallback is for machines without it')
    assert pick_device(None, 'cuda').type == 'cpu'
    assert 'no CUDA device is available here; using the CPU' in capsys.readouterr().out
    with pytest.raises(RuntimeError, match='--device cuda: no CUDA device'):
        pick_device('cuda', 'cpu')


def test_train_refuses_a_work_dir_that_holds_a_run(tmp_path):
    from pipeline.config import load_config
    from stages.train import train
    (tmp_path / 'log.jsonl').write_text('{"epoch": 1}\n')
    (tmp_path / 'last.pth').write_bytes(b'a checkpoint')
    cfg = load_config(ROOT / 'pipeline/configs/demo_synthetic.py')
    with pytest.raises(FileExistsError, match=r'holds a training run already \(last\.pth\); pass --resume to '
                                              'continue it or --overwrite to replace it'):
        train(cfg, mode='supervised', work_dir=tmp_path, device='cpu')
    assert (tmp_path / 'log.jsonl').read_text() == '{"epoch": 1}\n'


def test_a_misspelt_train_key_fails_train_student_naming_it():
    r = run('train-student', '--config', str(ROOT / 'pipeline/configs/demo_synthetic.py'),
            '--cfg-options', 'train.overlpa=mean')
    assert r.returncode == 1
    assert "train.overlpa: unknown key; did you mean 'overlap'?" in r.stderr.splitlines()[-1]

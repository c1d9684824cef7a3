"""The shipped demo teachers: they are what `make demo` uses, they match their manifest, they load
strictly into their configs, and a missing or altered file is refused with the file and the fix named."""
import json
import shutil

import pytest
import torch

from pipeline.config import load_config, resolve
from teachers.checkpoints import load_checkpoint, load_model
from teachers.rtmpose import build_model, count_flops
from teachers.shipped import ShippedTeacherError, half_precision, read_manifest, verify_shipped

DEMO = 'pipeline/configs/demo_synthetic.py'


def test_demo_uses_the_shipped_teachers_and_they_match_the_manifest():
    cfg = load_config(resolve(DEMO))
    manifest = read_manifest(resolve('teachers/demo'))
    used = {resolve(t.checkpoint).name: t for t in cfg.teachers.values()}
    student_init = resolve(cfg.student.init_backbone)
    # the demo uses exactly the shipped files: the teachers and the student's starting backbone
    assert set(used) | {student_init.name} == set(manifest['files'])
    assert {n for n, e in manifest['files'].items() if e['role'] == 'teacher'} == set(used)
    for name, t in used.items():
        assert resolve(t.checkpoint).parent == resolve('teachers/demo')
        entry = verify_shipped(resolve(t.checkpoint))
        assert entry['config'] == t.config and entry['dataset'] == t.dataset
        assert entry['bytes'] == resolve(t.checkpoint).stat().st_size
        # loads strictly (load_model raises on any missing/unexpected/mis-shaped key), stored in fp16
        sd = load_checkpoint(resolve(t.checkpoint))['state_dict']
        assert {v.dtype for v in sd.values() if v.is_floating_point()} == {torch.float16}
        model = load_model(resolve(t.config), resolve(t.checkpoint))
        assert model.skeleton_name == entry['skeleton']


def test_the_student_starts_from_the_shipped_backbone():
    from teachers.checkpoints import init_backbone
    cfg = load_config(resolve(DEMO))
    path = resolve(cfg.student.init_backbone)
    assert path.parent == resolve('teachers/demo')
    entry = verify_shipped(path)
    assert entry['role'] == 'pretrain' and entry['dataset'] == 'coco'  # trained on COCO-style labels only
    student = build_model(str(resolve(cfg.student.config)))
    before = {k: v.clone() for k, v in student.state_dict().items()}
    init_backbone(student, path)  # strict: every backbone weight of the student comes from the file
    after = student.state_dict()
    shipped = load_checkpoint(path)['state_dict']
    for k, v in after.items():
        if k.startswith('backbone.') and v.is_floating_point():
            assert torch.equal(v, shipped[k].float()), k
        elif k.startswith('head.'):
            assert torch.equal(v, before[k]), k  # the head keeps its initialisation


def test_teachers_are_several_times_the_students_flops():
    cfg = load_config(resolve(DEMO))
    student = count_flops(build_model(str(resolve(cfg.student.config))))
    for t in cfg.teachers.values():
        assert count_flops(build_model(str(resolve(t.config)))) >= 2.5 * student


def _copy_shipped(tmp_path):
    folder = tmp_path / 'demo'
    shutil.copytree(resolve('teachers/demo'), folder, ignore=shutil.ignore_patterns('logs'))
    return folder


def test_an_altered_teacher_is_refused_naming_the_file_and_the_rebuild(tmp_path):
    folder = _copy_shipped(tmp_path)
    path = folder / 'coco.pth'
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ShippedTeacherError, match=r'coco\.pth: sha256 .* differs .*make demo-teachers'):
        verify_shipped(path)


def test_a_missing_teacher_or_manifest_is_refused(tmp_path):
    folder = _copy_shipped(tmp_path)
    (folder / 'mpii.pth').unlink()
    with pytest.raises(ShippedTeacherError, match=r'mpii\.pth: missing.*make demo-teachers'):
        verify_shipped(folder / 'mpii.pth')
    (folder / 'manifest.json').unlink()
    with pytest.raises(ShippedTeacherError, match=r'manifest\.json: missing'):
        verify_shipped(folder / 'coco.pth')


def test_an_unlisted_file_is_refused(tmp_path):
    folder = _copy_shipped(tmp_path)
    shutil.copyfile(folder / 'coco.pth', folder / 'other.pth')
    with pytest.raises(ShippedTeacherError, match=r'other\.pth: not listed'):
        verify_shipped(folder / 'other.pth')


def test_half_precision_keeps_integer_buffers_and_rounds_floats():
    sd = {'w': torch.tensor([1.0, 1 / 3]), 'n': torch.tensor(7)}
    half = half_precision(sd)
    assert half['w'].dtype == torch.float16 and half['n'].dtype == torch.int64 and int(half['n']) == 7
    assert abs(float(half['w'][1]) - 1 / 3) < 1e-3




def test_manifest_records_how_the_teachers_were_made():
    m = read_manifest(resolve('teachers/demo'))
    assert 'cli.py demo-teachers' in m['command'] and m['make_target'] == 'make demo-teachers'
    for entry in m['files'].values():
        assert entry['train_seconds'] > 0 and entry['steps'] > 0
        assert {'pck_own', 'pck_cross'} <= set(entry['val_demo'])
        log = resolve('teachers/demo') / entry['log']
        assert json.loads(log.read_text().splitlines()[-1])['step'] == entry['steps']

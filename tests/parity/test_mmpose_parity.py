"""Parity of the native RTMPose (teachers/) with mmpose 1.3.2 itself.

scripts/mmpose_reference.py runs in the reference environment (.venv-mmpose, or the python named by
MMPOSE_REF_PYTHON): mmpose builds its own packaged RTMPose configs with random weights, saves
mmengine checkpoints, and records outputs and SimCCLabel results. Here the native code must
(a) load each checkpoint strictly from OUR config, (b) reproduce mmpose's SimCC outputs within 1e-5,
(c) reproduce SimCCLabel encode/decode exactly.

Without the reference environment the tests skip, unless PARITY_REQUIRED=1 (then they fail);
`make test-parity` sets it. `make test` runs test_golden.py instead (the same checks from stored
mmpose outputs) and deselects these.
The measured differences are printed (pytest -s) and, if PARITY_REPORT names a file, written
there as JSON.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from teachers.checkpoints import load_checkpoint, load_state_dict_strict, state_dict_from_checkpoint
from teachers.rtmpose import build_model
from teachers.simcc import SimCCCodec

pytestmark = pytest.mark.parity

ROOT = Path(__file__).resolve().parents[2]
REF_PYTHON = Path(os.environ.get('MMPOSE_REF_PYTHON', ROOT / '.venv-mmpose' / 'bin' / 'python'))
VARIANTS = ['t', 's', 'm', 'm_mpii', 'demo_union21']
TOLERANCE = 1e-5
_REPORT: dict = {}


def _unavailable(reason: str):
    if os.environ.get('PARITY_REQUIRED') == '1':
        pytest.fail(f'PARITY_REQUIRED=1 but {reason}')
    pytest.skip(reason)


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    if not REF_PYTHON.exists():
        _unavailable(f'mmpose reference environment not found: {REF_PYTHON} '
                     '(build it with scripts/install_mmpose_reference.sh or set MMPOSE_REF_PYTHON)')
    check = ('from mmengine.registry import init_default_scope; init_default_scope("mmpose"); '
             'import mmpose.models, mmpose.codecs')
    probe = subprocess.run([str(REF_PYTHON), '-c', check], capture_output=True, text=True)
    if probe.returncode != 0:
        _unavailable(f'{REF_PYTHON} cannot import mmpose: {probe.stderr.strip()[-500:]}')
    out = tmp_path_factory.mktemp('mmpose_reference')
    run = subprocess.run([str(REF_PYTHON), str(ROOT / 'scripts' / 'mmpose_reference.py'), 'parity',
                          '--out', str(out), '--variants', ','.join(VARIANTS)],
                         capture_output=True, text=True, timeout=1200)
    if run.returncode != 0:
        pytest.fail(f'scripts/mmpose_reference.py failed:\n{run.stderr[-3000:]}')
    manifest = json.loads((out / 'manifest.json').read_text())
    yield out, manifest
    if os.environ.get('PARITY_REPORT'):
        report = {'versions': manifest['versions'], 'tolerance': TOLERANCE, 'variants': _REPORT}
        Path(os.environ['PARITY_REPORT']).write_text(json.dumps(report, indent=1))


def _native(manifest, name):
    return build_model(ROOT / 'pipeline' / 'configs' / 'models' / manifest['variants'][name]['our_config'])


@pytest.mark.parametrize('name', VARIANTS)
def test_checkpoint_loads_strictly_and_outputs_match(reference, name):
    out, manifest = reference
    info = manifest['variants'][name]
    model = _native(manifest, name).eval()
    ckpt = load_checkpoint(out / info['checkpoint'])  # weights_only allowlist, real mmengine file
    load_state_dict_strict(model, state_dict_from_checkpoint(ckpt, use_ema=True))
    if info['runner_layout']:  # the raw (non-EMA) weights differ and load strictly as well
        raw = state_dict_from_checkpoint(ckpt, use_ema=False)
        assert set(raw) == set(model.state_dict())
        assert any(not torch.equal(raw[k], v) for k, v in model.state_dict().items()
                   if v.is_floating_point())

    ref = np.load(out / info['io'])
    inputs = model.normalize(torch.from_numpy(ref['images']))
    normalize_diff = float(np.abs(inputs.numpy() - ref['inputs']).max())
    with torch.no_grad():
        simcc_x, simcc_y = model(torch.from_numpy(ref['inputs']))
    diff_x = float(np.abs(simcc_x.numpy() - ref['simcc_x']).max())
    diff_y = float(np.abs(simcc_y.numpy() - ref['simcc_y']).max())
    _REPORT[name] = dict(simcc_x_max_abs_diff=diff_x, simcc_y_max_abs_diff=diff_y,
                         normalize_max_abs_diff=normalize_diff,
                         output_abs_max=info['output_abs_max'], checkpoint_keys=info['checkpoint_keys'])
    print(f'\n[parity] {name}: simcc_x {diff_x:.3e}  simcc_y {diff_y:.3e}  normalize '
          f'{normalize_diff:.3e}  (|output| max {info["output_abs_max"]:.3g})')
    assert simcc_x.shape == ref['simcc_x'].shape and simcc_y.shape == ref['simcc_y'].shape
    assert normalize_diff <= TOLERANCE
    assert diff_x <= TOLERANCE and diff_y <= TOLERANCE


@pytest.mark.parametrize('name', VARIANTS)
def test_codec_matches_simcc_label(reference, name):
    out, manifest = reference
    info = manifest['variants'][name]
    our_cfg = Config.fromfile(str(ROOT / 'pipeline' / 'configs' / 'models' / info['our_config']))
    codec = SimCCCodec.from_config(our_cfg.codec)
    ref = np.load(out / info['codec'])
    enc = codec.encode(ref['keypoints'], ref['visible'])
    np.testing.assert_array_equal(enc['keypoint_x_labels'], ref['x_labels'])
    np.testing.assert_array_equal(enc['keypoint_y_labels'], ref['y_labels'])
    np.testing.assert_array_equal(enc['keypoint_weights'], ref['weights'])
    for simcc, want_kp, want_sc in (('simcc', 'decoded_keypoints', 'decoded_scores'),
                                    ('labels', 'label_keypoints', 'label_scores')):
        sx, sy = ((ref['simcc_x'], ref['simcc_y']) if simcc == 'simcc'
                  else (ref['x_labels'], ref['y_labels']))
        kp, sc = codec.decode(sx, sy)
        np.testing.assert_array_equal(kp, ref[want_kp])
        np.testing.assert_array_equal(sc, ref[want_sc])


def test_golden_files_are_what_mmpose_gives_today(reference, tmp_path):
    """tests/parity/golden (checked without mmpose by test_golden.py) is what mmpose computes now."""
    from tests.parity.test_golden import GOLDEN, TOLERANCE
    run = subprocess.run([str(REF_PYTHON), str(ROOT / 'scripts' / 'mmpose_reference.py'), 'golden',
                          '--out', str(tmp_path)], capture_output=True, text=True, timeout=1200)
    if run.returncode != 0:
        pytest.fail(f'scripts/mmpose_reference.py golden failed:\n{run.stderr[-3000:]}')
    stored, today = (json.loads((d / 'manifest.json').read_text()) for d in (GOLDEN, tmp_path))
    assert {k: v for k, v in stored.items() if k != 'versions'} == {k: v for k, v in today.items() if k != 'versions'}
    for name in stored['variants']:
        want, got = np.load(GOLDEN / f'{name}.npz'), np.load(tmp_path / f'{name}.npz')
        assert sorted(want.files) == sorted(got.files)
        for key in want.files:
            if key in ('lut', 'simcc_x', 'simcc_y'):  # float32 network arithmetic
                assert np.abs(want[key] - got[key]).max() <= TOLERANCE, (name, key)
            else:  # codec
                np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-9, err_msg=f'{name} {key}')


def test_state_dict_signature_of_m_matches_mmpose(reference):
    """The key/shape signature embedded in tests/teachers/test_rtmpose.py is mmpose's."""
    from tests.teachers.test_rtmpose import MMPOSE_M_COCO17_SIGNATURE, state_dict_signature
    _, manifest = reference
    assert manifest['variants']['m']['signature'] == MMPOSE_M_COCO17_SIGNATURE
    assert state_dict_signature(_native(manifest, 'm').state_dict()) == MMPOSE_M_COCO17_SIGNATURE

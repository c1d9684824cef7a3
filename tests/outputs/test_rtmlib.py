"""Deploying through rtmlib: the exported student ONNX run by rtmlib's RTMPose gives our keypoints.

The student is the demo student (pipeline/configs/models/rtmpose-demo_union21_128x96.py) with the
shipped trained weights of teachers/demo/student_init.pth (the same network with a COCO-17 head:
its 17 joint rows fill the union's first 17, union_indices(COCO17) == 0..16; the 4 other rows keep
their seeded initialisation), so the SimCC outputs are peaked like a trained student's. It is saved
as a checkpoint, loaded as `cli.py predict --config --checkpoint` loads it, exported to ONNX as
`cli.py export-report --onnx` does, and run on the val images of a small synthetic COCO twin with
their annotated boxes: once through stages.predict.predict_images (the `cli.py predict` path,
boxes from a COCO-format detection file) and once through rtmlib.RTMPose.

What a user has to do to match (docs/deploy.md): give rtmlib an RGB image (the student trains on
RGB: its data_preprocessor has bgr_to_rgb=True, and the ONNX graph holds no normalisation and no
channel swap, while rtmlib normalises whatever array it is given in that array's channel order) and
model_input_size=(w, h) = (96, 128). rtmlib's default mean/std are the student's (RGB order).

Where rtmlib 0.0.16 differs from our path, and why it does not move keypoints:
- crop: same box centre and padding 1.25, same aspect fix, same INTER_LINEAR warp with a zero
  border; its warp matrix is built from a vertical instead of a horizontal direction vector (the same
  similarity transform), and it maps keypoints back with kp / input_size * scale + centre - scale / 2,
  which is the inverse of that affine map (ours inverts the matrix). Box arithmetic is float64 there,
  float32 here (mmpose's flow): differences of ~1e-5 px.
- decoding: both take the SimCC arg-max divided by split ratio 2.0 (rtmlib hard-codes 2.0; the
  demo student's codec uses 2.0). rtmlib's score is the MEAN of the two axis maxima, mmpose's and
  ours is the MIN; a joint is marked invalid (location -1) when that score is <= 0, so a joint whose
  one axis peaks above 0 and the other below can be -1 here and a real location there.
- no flip test on either side (predict_boxes runs one forward pass), one box per forward in rtmlib,
  batched here (eval-mode BatchNorm: no difference), onnxruntime there, PyTorch here (~1e-5).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import ROOT

try:
    import rtmlib
except ImportError as err:  # a test dependency: fail loudly, never skip
    raise ImportError('rtmlib is a test dependency: .venv/bin/pip install --no-deps -r requirements-test.txt '
                      '(--no-deps: its opencv-contrib-python requirement would clash with opencv-python)') from err

from rtmlib.version import __version__ as RTMLIB_VERSION  # noqa: E402

STUDENT_CONFIG = ROOT / 'pipeline' / 'configs' / 'models' / 'rtmpose-demo_union21_128x96.py'
TRAINED_WEIGHTS = ROOT / 'teachers' / 'demo' / 'student_init.pth'  # demo-s coco17: same network, 17-joint head
N_IMAGES = 20  # -> 4 val images of the COCO-style twin, 1-3 people each
TOLERANCE_PX = 0.5


def _demo_student(seed: int = 0):
    from teachers.checkpoints import load_checkpoint, state_dict_from_checkpoint
    from teachers.rtmpose import build_model

    torch.manual_seed(seed)
    model = build_model(str(STUDENT_CONFIG))
    sd = model.state_dict()
    trained = state_dict_from_checkpoint(load_checkpoint(TRAINED_WEIGHTS))
    assert set(trained) == set(sd), 'student_init.pth no longer has the demo student network'
    for key, value in trained.items():
        if key.startswith('head.final_layer.'):  # (17, ...) coco rows -> union rows 0..16
            sd[key][:value.shape[0]] = value.to(sd[key].dtype)
        else:
            sd[key] = value.to(sd[key].dtype)
    model.load_state_dict(sd)
    return model.eval()


@pytest.fixture(scope='module')
def deployed(tmp_path_factory):
    """(onnx path, val image folder, COCO detection file, predict output folder, val annotations)."""
    from data.twins import make_synthetic
    from outputs.export import check_onnx, export_onnx
    from stages.predict import load_predictor, predict_images
    from teachers.checkpoints import save_checkpoint

    root = tmp_path_factory.mktemp('rtmlib')
    make_synthetic(root / 'synthetic', n_images=N_IMAGES, seed=0, styles=('coco',))
    coco = root / 'synthetic' / 'coco'
    val = json.loads((coco / 'annotations' / 'person_keypoints_val.json').read_text())
    assert val['annotations'], 'no val instances in the synthetic twin'
    det_file = root / 'val_dets.json'
    det_file.write_text(json.dumps([dict(image_id=a['image_id'], category_id=1, bbox=a['bbox'], score=1.0)
                                    for a in val['annotations']]))

    from outputs.export import dataset_meta_from_skeleton
    from tests.conftest import COCO_MPII
    # a trained student's checkpoint names its joints (dataset_meta), as the train stage writes it
    ckpt = save_checkpoint(root / 'student.pth', _demo_student().state_dict(),
                           {'dataset_meta': dataset_meta_from_skeleton(COCO_MPII)})
    model, _, skeleton = load_predictor(config=STUDENT_CONFIG, checkpoint=ckpt, device='cpu')  # as `cli.py predict`
    assert skeleton.joint_names == COCO_MPII.joint_names
    onnx_path = export_onnx(model, tuple(model.input_size), root / 'export' / 'student.onnx')
    assert check_onnx(onnx_path, model) < 1e-4
    out = predict_images(model, skeleton, coco / 'images' / 'val', root / 'predict', det_file=det_file, det_score_thr=0.0)
    return dict(onnx=onnx_path, images=coco / 'images' / 'val', predict=out, val=val)


def _ours(deployed):
    """image file name -> (boxes (n, 4) xyxy, keypoints (n, 21, 2), scores (n, 21)) from predictions.json."""
    preds = json.loads((deployed['predict'] / 'predictions.json').read_text())
    out = {}
    for r in preds['images']:
        people = r['people']
        out[Path(r['image']).name] = (np.array([p['bbox'] for p in people], np.float32).reshape(-1, 4),
                                      np.array([p['keypoints'] for p in people], np.float32).reshape(-1, 21, 2),
                                      np.array([p['scores'] for p in people], np.float32).reshape(-1, 21))
    return out


def _rtmlib_pose(onnx_path):
    # What docs/deploy.md tells a user to write (model_input_size is (w, h); mean/std are RGB-ordered,
    # rtmlib's defaults, written out here).
    return rtmlib.RTMPose(onnx_model=str(onnx_path), model_input_size=(96, 128),
                          mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                          backend='onnxruntime', device='cpu')


def _run_rtmlib(pose, deployed, ours, rgb: bool):
    got = {}
    for name, (boxes, _, _) in ours.items():
        img = cv2.imread(str(deployed['images'] / name))  # BGR, as rtmlib's own examples read it
        if rgb:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        got[name] = pose(img, bboxes=boxes.tolist())
    return got


def test_rtmlib_matches_predict(deployed):
    ours = _ours(deployed)
    n_people = sum(len(b) for b, _, _ in ours.values())
    assert len(ours) >= 2 and n_people >= 3, f'too little val data ({len(ours)} images, {n_people} people)'
    theirs = _run_rtmlib(_rtmlib_pose(deployed['onnx']), deployed, ours, rgb=True)

    worst, compared = 0.0, 0
    for name, (boxes, kpts, scores) in ours.items():
        r_kpts, r_scores = theirs[name]
        assert r_kpts.shape == kpts.shape and r_scores.shape == scores.shape
        # Joints we decode as valid (min of the axis maxima > 0) are valid for rtmlib too (mean >= min).
        valid = scores > 0
        assert valid.mean() > 0.5, 'the student should be confident on most joints'
        diff = np.abs(r_kpts - kpts)[valid]
        worst = max(worst, float(diff.max()))
        compared += int(valid.sum())
        # rtmlib's score is the mean of the axis maxima, ours (mmpose's) the min: never above rtmlib's.
        assert np.all(scores <= r_scores + 1e-3)
    print(f'rtmlib {RTMLIB_VERSION}: {compared} joints, max |diff| {worst:.4f} px')
    # predictions.json rounds to 0.01 px; the rest is float noise (crop arithmetic, onnxruntime).
    assert worst <= TOLERANCE_PX, f'rtmlib keypoints differ from cli.py predict by up to {worst:.3f} px'


def test_rtmlib_needs_an_rgb_image(deployed):
    """The ONNX graph has no channel swap: a BGR image straight from cv2.imread gives other keypoints."""
    ours = _ours(deployed)
    theirs = _run_rtmlib(_rtmlib_pose(deployed['onnx']), deployed, ours, rgb=False)
    worst = max(float(np.abs(theirs[n][0] - k)[s > 0].max()) for n, (_, k, s) in ours.items())
    assert worst > 2 * TOLERANCE_PX, f'BGR input gave nearly the same keypoints ({worst:.3f} px)'

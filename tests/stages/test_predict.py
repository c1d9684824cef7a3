"""cli.py predict: the same keypoints as evaluation for the same boxes, pictures and JSON written,
boxes from a detection file, --bbox or the whole image; each box drawn with its detection score;
images without a person counted in one warning; model config overrides."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from data.images import read_image
from pipeline.run import split_instances
from teachers.inference import predict_model
from stages.predict import load_predictor, predict_images
from tests.conftest import COCO_MPII, REAL_SAMPLES, ROOT

STUDENT_CONFIG = ROOT / 'pipeline/configs/models/rtmpose-demo_union21_128x96.py'
COCO_IMAGES = REAL_SAMPLES / 'coco' / 'images'
COCO_DETS = REAL_SAMPLES / 'coco' / 'annotations' / 'person_detection_results_sample.json'
MPII_IMAGES = REAL_SAMPLES / 'mpii' / 'images'


@pytest.fixture(scope='module')
def random_checkpoint(tmp_path_factory):
    """A randomly initialised demo student saved as a checkpoint: drawing and counting need no skill."""
    from teachers.checkpoints import save_checkpoint
    from teachers.rtmpose import build_model
    from outputs.export import dataset_meta_from_skeleton
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp('predict') / 'random.pth',
                           build_model(str(STUDENT_CONFIG)).state_dict(),
                           {'dataset_meta': dataset_meta_from_skeleton(COCO_MPII)})


@pytest.fixture
def random_student(random_checkpoint):
    if not COCO_DETS.is_file() or not MPII_IMAGES.is_dir():
        pytest.skip(f'real COCO / MPII samples missing under {REAL_SAMPLES}')
    model, _, skeleton = load_predictor(config=STUDENT_CONFIG, checkpoint=random_checkpoint, device='cpu')
    assert skeleton.joint_names == COCO_MPII.joint_names  # from the checkpoint's dataset_meta
    return model, skeleton


def _person_detections(image_id: int, thr: float) -> list[dict]:
    return [d for d in json.loads(COCO_DETS.read_text())
            if d['image_id'] == image_id and d['category_id'] == 1 and d['score'] >= thr]


def test_predict_writes_and_draws_each_persons_box_and_detection_score(random_student, tmp_path, capsys):
    predict_images(*random_student, COCO_IMAGES, tmp_path, det_file=COCO_DETS, det_score_thr=0.3)
    assert 'warning' not in capsys.readouterr().out  # every sample image has a person
    images = json.loads((tmp_path / 'predictions.json').read_text())['images']
    assert len(images) == 4
    for image in images:
        dets = _person_detections(int(image['image'].rsplit('/', 1)[-1].split('.')[0]), 0.3)
        assert [p['bbox_score'] for p in image['people']] == [round(d['score'], 4) for d in dets]
        np.testing.assert_allclose([p['bbox'] for p in image['people']],
                                   [[x, y, x + w, y + h] for x, y, w, h in (d['bbox'] for d in dets)], atol=0.006)
    first = images[0]
    x1, y1, x2, y2 = (int(round(v)) for v in first['people'][0]['bbox'])
    stem = first['image'].rsplit('/', 1)[-1].rsplit('.', 1)[0]
    drawn, plain = cv2.imread(str(tmp_path / f'{stem}.png')), read_image(first['image'])
    top_edge = (drawn[y1, x1 + 5:x2 - 5] != plain[y1, x1 + 5:x2 - 5]).any(axis=1)
    assert top_edge.mean() > 0.9, top_edge.mean()  # the box is drawn, not only the skeleton


def test_only_a_detection_gets_its_score_drawn_beside_the_box(random_student, tmp_path):
    image = COCO_IMAGES / '000000000785.jpg'
    det = _person_detections(785, 0.3)[0]
    det_file = tmp_path / 'one.json'
    det_file.write_text(json.dumps([dict(det, score=0.87)]))
    x, y, w, h = det['bbox']
    box = [x, y, x + w, y + h]
    predict_images(*random_student, image, tmp_path / 'det', det_file=det_file)
    predict_images(*random_student, image, tmp_path / 'given', bboxes=[box])
    people = [json.loads((tmp_path / d / 'predictions.json').read_text())['images'][0]['people']
              for d in ('det', 'given')]
    assert [p[0]['bbox_score'] for p in people] == [0.87, 1.0] and people[0][0]['keypoints'] == people[1][0]['keypoints']
    a, b = (cv2.imread(str(tmp_path / d / '000000000785.png')) for d in ('det', 'given'))
    ys, xs = np.nonzero((a != b).any(axis=2))  # the same box and skeleton: only the score label differs
    x1, y1 = int(box[0]), int(box[1])
    assert len(ys) and x1 - 2 <= xs.min() and xs.max() < x1 + 120 and y1 - 40 <= ys.min() and ys.max() < y1 + 40


def test_images_without_a_person_are_counted_in_one_warning(random_student, tmp_path, capsys):
    # MPII's file names are no COCO image ids: a COCO detection file gives them nobody
    predict_images(*random_student, MPII_IMAGES, tmp_path, det_file=COCO_DETS)
    lines = capsys.readouterr().out.splitlines()
    warnings = [x for x in lines if x.startswith('warning')]
    assert len(warnings) == 1 and warnings[0].startswith(f'warning: 5 of 5 images have no person in {COCO_DETS}')
    assert '004645041.jpg, 005808361.jpg, 051423444.jpg, ... (2 more)' in warnings[0]
    images = json.loads((tmp_path / 'predictions.json').read_text())['images']
    assert len(images) == 5 and all(i['people'] == [] for i in images)


def test_cfg_options_override_the_model_config(random_checkpoint):
    plain = load_predictor(config=STUDENT_CONFIG, checkpoint=random_checkpoint, device='cpu')[0]
    model = load_predictor(config=STUDENT_CONFIG, checkpoint=random_checkpoint, device='cpu',
                           overrides={'model.data_preprocessor.mean': [1.0, 2.0, 3.0]})[0]
    assert model.mean.flatten().tolist() == [1.0, 2.0, 3.0] != plain.mean.flatten().tolist()


def test_predict_equals_evaluation_on_the_same_boxes(offline_run, dumped, tmp_path):
    cfg = dumped['cfg']
    table = split_instances(cfg, 'val')
    rows = np.arange(min(4, len(table)))
    model, flip_test, skeleton = load_predictor(run=offline_run, device='cpu')
    assert skeleton.joint_names == COCO_MPII.joint_names  # the run's datasets' union
    assert flip_test is True  # the run's evaluation.flip_test (the demo config's)
    want_k, want_s = predict_model(model, table.select(rows), 'cpu', COCO_MPII, flip_test=True)
    for r in rows:
        out = tmp_path / f'row{r}'
        predict_images(model, skeleton, table.image_path[r], out, bboxes=[table.bbox[r].tolist()], flip_test=flip_test)
        people = json.loads((out / 'predictions.json').read_text())['images'][0]['people']
        assert len(people) == 1
        np.testing.assert_allclose(people[0]['keypoints'], want_k[r], atol=0.006)  # JSON keeps 2 decimals
        np.testing.assert_allclose(people[0]['scores'], want_s[r], atol=6e-5)
        assert (out / f'{table.image_path[r].rsplit("/", 1)[-1].rsplit(".", 1)[0]}.png').stat().st_size > 0


def test_predict_cli_with_detections_and_whole_images(offline_run, dumped, tmp_path):
    cfg = dumped['cfg']
    table = split_instances(cfg, 'val')
    coco = np.flatnonzero(table.dataset == 'coco')[:3]
    folder = tmp_path / 'images'
    folder.mkdir()
    dets = []
    for r in coco:
        src = table.image_path[r]
        (folder / src.rsplit('/', 1)[-1]).write_bytes(open(src, 'rb').read())
        x1, y1, x2, y2 = table.bbox[r].tolist()
        dets.append(dict(image_id=int(table.image_id[r]), category_id=1, score=0.9, bbox=[x1, y1, x2 - x1, y2 - y1]))
    det_file = tmp_path / 'dets.json'
    det_file.write_text(json.dumps(dets))
    r = subprocess.run([sys.executable, str(ROOT / 'cli.py'), 'predict', str(folder), '--run', str(offline_run),
                        '--out', str(tmp_path / 'out'), '--det-file', str(det_file), '--device', 'cpu'],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    pred = json.loads((tmp_path / 'out' / 'predictions.json').read_text())
    assert sum(len(i['people']) for i in pred['images']) == len(coco)
    assert len(pred['joints']) == 21 and all(len(p['keypoints']) == 21 for i in pred['images'] for p in i['people'])
    r = subprocess.run([sys.executable, str(ROOT / 'cli.py'), 'predict', str(folder), '--run', str(offline_run),
                        '--out', str(tmp_path / 'whole'), '--device', 'cpu'], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    whole = json.loads((tmp_path / 'whole' / 'predictions.json').read_text())
    assert all(len(i['people']) == 1 and i['people'][0]['bbox'][:2] == [0.0, 0.0] for i in whole['images'])
    assert {p['bbox_score'] for i in pred['images'] for p in i['people']} == {0.9}
    assert all(i['people'][0]['bbox_score'] == 1.0 for i in whole['images'])  # a given box scores 1, as mmpose

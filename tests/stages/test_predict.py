"""cli.py predict: the same keypoints as evaluation for the same boxes, pictures and JSON written,
boxes from a detection file, --bbox or the whole image."""
import json
import subprocess
import sys

import numpy as np

from pipeline.run import split_instances
from teachers.inference import predict_model
from stages.predict import load_predictor, predict_images
from tests.conftest import ROOT


def test_predict_equals_evaluation_on_the_same_boxes(offline_run, dumped, tmp_path):
    cfg = dumped['cfg']
    table = split_instances(cfg, 'val')
    rows = np.arange(min(4, len(table)))
    model = load_predictor(run=offline_run, device='cpu')
    want_k, want_s = predict_model(model, table.select(rows), 'cpu')
    for r in rows:
        out = tmp_path / f'row{r}'
        predict_images(model, table.image_path[r], out, bboxes=[table.bbox[r].tolist()])
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

"""`cli.py predict`: a trained student (a run, or an mmpose config + checkpoint) on an image or a folder.

Boxes come from a COCO-format detection file (person detections; `image_id` is matched to the file
name's digits, as COCO names its images), from boxes given on the command line (used for every
image), or are the whole image. Each image is written with every person's box (its detection score
beside it) and skeleton drawn (the run's union of its datasets' joints; the joints only one dataset
annotates in their own colour) beside `predictions.json`: per image, per person, the box, its score (the
detection's; 1 for a given box, as mmpose), the keypoints (image pixels) and their scores. Images the detections give no person
are counted and named in one warning line. Prediction is evaluation's own path
(teachers.inference.predict_boxes): same crop, same decoding. The detection file is read by
data.coco.read_detections, as the val split's.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from mmengine.config import Config

from data.coco import read_detections
from data.images import read_image
from data.datasets import datasets_union
from data.skeletons import SKELETONS, get_skeleton
from data.files import atomic_write, atomic_write_text
from outputs.report import draw_box, draw_skeleton
from pipeline.run import pick_device
from pipeline.run_folder import RunFolder
from teachers.inference import predict_boxes
from teachers.checkpoints import load_checkpoint, load_model

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def image_files(source) -> list[Path]:
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f'{source}: no image files ({", ".join(IMAGE_SUFFIXES)})')
        return files
    if not source.is_file():
        raise FileNotFoundError(f'{source}: no such image or folder')
    return [source]


def detection_boxes(det_file, score_thr: float) -> dict[int, np.ndarray]:
    """image_id -> (n, 5) person boxes of a COCO results file, x1, y1, x2, y2, score >= score_thr."""
    out: dict[int, list] = {}
    for _, image_id, (x, y, w, h), score in read_detections(det_file):
        if score >= score_thr:
            out.setdefault(image_id, []).append([x, y, x + w, y + h, score])
    return {k: np.array(v, np.float32) for k, v in out.items()}


def load_predictor(run=None, config=None, checkpoint=None, device=None, overrides: dict | None = None):
    """(model, flip test, skeleton) of a run (the checkpoint its report scores, its evaluation.flip_test,
    the union of its datasets) or of an mmpose-style config + checkpoint (its model.test_cfg.flip_test,
    as mmpose; the skeleton its config names, else its checkpoint's dataset_meta); `overrides` are
    dotted keys of that model config (--cfg-options), merged as mmengine does."""
    flip_test = skeleton = None
    if run is not None:
        folder = RunFolder(run)
        config, checkpoint = folder.model_config(), folder.scored_checkpoint()[0]
        run_cfg = folder.load_config()
        flip_test = run_cfg.evaluation.flip_test
        skeleton = datasets_union(run_cfg.datasets)
    if config is None or checkpoint is None:
        raise ValueError('predict needs --run RUN, or --config CFG with --checkpoint CKPT')
    config = Config.fromfile(str(config))
    if overrides:
        config.merge_from_dict(overrides)
    if flip_test is None:
        flip_test = bool(config.get('model', {}).get('test_cfg', {}).get('flip_test', False))
    model = load_model(config, checkpoint, device=pick_device(device))
    if skeleton is None and model.skeleton_name in SKELETONS:
        skeleton = get_skeleton(model.skeleton_name)
    elif skeleton is None:
        from outputs.export import skeleton_from_dataset_meta
        meta = load_checkpoint(checkpoint).get('meta', {}).get('dataset_meta')
        if not meta:
            raise ValueError(f'{checkpoint}: no dataset_meta in its meta, and {config.filename} names no dataset '
                             'skeleton: which joints the model predicts is unknown')
        skeleton = skeleton_from_dataset_meta(meta, model.skeleton_name)
    return model, flip_test, skeleton


def image_boxes(path: Path, img: np.ndarray, dets: dict | None, bboxes) -> np.ndarray:
    """(n, 5) boxes x1, y1, x2, y2, score of one image: its detections (image_id = the file name's
    digits), else the given boxes, else the whole image; given boxes score 1."""
    if dets is not None:
        digits = ''.join(c for c in path.stem if c.isdigit())
        return dets.get(int(digits), np.zeros((0, 5), np.float32)) if digits else np.zeros((0, 5), np.float32)
    boxes = np.array(bboxes, np.float32).reshape(-1, 4) if bboxes else \
        np.array([[0, 0, img.shape[1], img.shape[0]]], np.float32)
    return np.concatenate([boxes, np.ones((len(boxes), 1), np.float32)], axis=1)


def no_people_warning(names: list[str], n_images: int, det_file, det_score_thr: float) -> str:
    """One line for the images the detections give no person (e.g. an MPII folder with a COCO
    detection file: no image_id matches), naming the first few."""
    shown = ', '.join(names[:3]) + (f', ... ({len(names) - 3} more)' if len(names) > 3 else '')
    return (f'warning: {len(names)} of {n_images} images have no person in {det_file} (person detections with '
            f'score >= {det_score_thr}, image_id = the digits of the file name): {shown}')


def predict_images(model, skeleton, source, out, det_file=None, bboxes=(), det_score_thr: float = 0.3,
                   radius: int = 3, thickness: int = 2, score_thr: float = 0.3, flip_test: bool = False) -> Path:
    """`skeleton`: the joints the model predicts (load_predictor's)."""
    device = next(model.parameters()).device
    out = Path(out)
    dets = detection_boxes(det_file, det_score_thr) if det_file else None
    results, no_people = [], []
    for path in image_files(source):
        img = read_image(path)
        boxes = image_boxes(path, img, dets, bboxes)
        kpts, scores = predict_boxes(model, [img] * len(boxes), boxes[:, :4], device, skeleton, flip_test=flip_test)
        canvas = img.copy()
        for b, k, s in zip(boxes, kpts, scores):
            # a detection's score is drawn; a given box's 1 would say nothing
            draw_box(canvas, b[:4], label=f'{b[4]:.2f}' if dets is not None else None, thickness=thickness)
            draw_skeleton(canvas, k, s, skeleton, thr=score_thr, radius=radius, thickness=thickness)
        ok, png = cv2.imencode('.png', canvas)
        atomic_write(out / f'{path.stem}.png', lambda tmp, png=png: Path(tmp).write_bytes(png.tobytes()))
        results.append(dict(image=str(path), people=[
            dict(bbox=[round(float(v), 2) for v in b[:4]], bbox_score=round(float(b[4]), 4),
                 keypoints=np.round(k, 2).tolist(), scores=np.round(s, 4).tolist())
            for b, k, s in zip(boxes, kpts, scores)]))
        if not len(boxes):
            no_people.append(path.name)
    atomic_write_text(out / 'predictions.json', json.dumps(dict(joints=list(skeleton.joint_names), images=results),
                                                           indent=1))
    print(f'{len(results)} images, {sum(len(r["people"]) for r in results)} people -> {out}')
    if no_people:
        print(no_people_warning(no_people, len(results), det_file, det_score_thr))
    return out

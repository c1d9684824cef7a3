"""export-report: evaluate student, baseline and teachers on the val split; account for the compute;
write report.html / report.md / metrics.json / predictions.h5; export the student (mmpose, ONNX).

Teachers are scored from their cached view-0 targets of the val split (no teacher re-run).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cache.store import open_cache, reconstruct_rows
from data.images import decode_grouped
from data.datasets import dataset_format, datasets_union
from data.skeletons import model_skeleton, union_mask
from data.files import atomic_write_text
from outputs.files import finite
from outputs.report import draw_skeleton, figure_curves, figure_per_joint, render_html, render_markdown
from outputs.report_content import results_rows
from pipeline.config import resolve
from pipeline.cache_check import check_cache
from pipeline.models import model_geometry
from pipeline.run import cache_path, pick_device, split_instances
from pipeline.run_folder import OFFLINE_VS_ONLINE_FILE, RunFolder
from stages.evaluation import evaluate_predictions, warn_missing_head_boxes
from teachers.checkpoints import load_model
from teachers.inference import predict_from_simcc, predict_model


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob('*') if f.is_file())


def box_sources(datasets: dict) -> dict:
    """COCO-format val sets -> the boxes their persons are cropped from: a detection file (with its score
    threshold) or, without one, the annotation file's ground-truth boxes. AP depends on which."""
    out = {}
    for name, ds in datasets.items():
        if dataset_format(ds['type']) == 'coco' and 'val' in ds:
            det = ds['val']['det_file']
            out[name] = dict(det_file=str(resolve(det)), det_score_thr=float(ds['val']['det_score_thr'])) \
                if det else dict(det_file=None)
    return out


def teacher_predictions(cfg, table):
    """Each teacher's val predictions decoded from the cache (student bins): {name: (plain, flip test,
    covered, datasets)} with plain = (keypoints, scores) of view 0 (the un-augmented crop) and flip test
    the same averaged with view 1 (its mirror)."""
    from teachers.simcc import SimCCCodec
    path = cache_path(cfg, 'val')
    cache = open_cache(path)
    # a teacher, an annotation file or the views changed since the val dump: its rows are stale
    check_cache(cfg, 'val', cache, table, remedy='re-run dump-teachers --split val')
    student = model_geometry(cfg.student.config)
    codec = SimCCCodec(input_size=student['input_size'], sigma=(1.0, 1.0), simcc_split_ratio=student['split'])
    out = {}
    rows = np.arange(len(table))
    union = datasets_union(cfg.datasets)
    for name in cache.teacher_names:
        spec = cache.teacher_spec(name)
        x, y, _, _ = reconstruct_rows(cache.read_view_plane(name, 0), rows)
        mirrored = reconstruct_rows(cache.read_view_plane(name, 1), rows)[:2]
        args = (table, rows, codec, student['input_size'], spec['union_joints'], union)
        covered = np.zeros(union.num_joints, bool)
        covered[spec['union_joints']] = True
        out[name] = (predict_from_simcc(x, y, *args), predict_from_simcc(x, y, *args, mirrored=mirrored),
                     covered, spec.get('datasets'))  # scored only where the dump ran it
    return out


def export_report(run_dir, out=None, formats=('html', 'md', 'json', 'h5'), onnx=False, device=None):
    from outputs.predictions import write_predictions_h5

    folder = RunFolder(run_dir)
    run_dir, run = folder.path, folder.read_run()
    cfg = folder.load_config()
    out = Path(out) if out else folder.report
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(device)
    warn_missing_head_boxes(cfg)
    table = split_instances(cfg, 'val')
    union = datasets_union(cfg.datasets)
    flip_test = bool(cfg.evaluation.flip_test)

    def scored(f: RunFolder, kind: str, name: str) -> tuple:
        """A run's entry (its scored checkpoint: best.pth if kept, else last.pth) with and without the
        flip test; returns the model and the predictions the configured evaluation gives."""
        path, which = f.scored_checkpoint()
        model = load_model(f.model_config(), path, device=device).eval()
        both = {flip: predict_model(model, table, device, union, flip_test=flip) for flip in (True, False)}
        covered = union_mask(model_skeleton(model.skeleton_name, union), union)
        metrics = {flip: evaluate_predictions(cfg, table, *both[flip], covered) for flip in both}
        entries[name] = dict(kind=kind, metrics=metrics[flip_test], metrics_no_flip=metrics[False],
                             metrics_flip=metrics[True], checkpoint=which, log=f.read_log())
        return model, both[flip_test]

    entries = {}  # name -> dict(kind, metrics, ...)
    for name, (plain, flipped, covered, datasets) in teacher_predictions(cfg, table).items():
        metrics = {flip: evaluate_predictions(cfg, table, *p, covered, datasets)
                   for flip, p in ((False, plain), (True, flipped))}
        entries[f'teacher {name}'] = dict(kind='teacher', metrics=metrics[flip_test], metrics_no_flip=metrics[False],
                                          metrics_flip=metrics[True], checkpoint='shipped')
    baseline = folder.baseline()
    if baseline.path != run_dir and baseline.checkpoint.exists():
        scored(baseline, 'baseline', 'baseline (no KD)')
    student, predictions = scored(folder, 'student', f'student ({run["mode"]})')

    cost = teacher_cost(cfg, run, entries)
    exports = export_student(folder, run, student, out, onnx, union)

    # -- figures and files -----------------------------------------------------------------------
    figures = dict(curves=figure_curves({e: v.get('log', []) for e, v in entries.items()}),
                   per_joint=figure_per_joint(entries, union),
                   examples=example_images(table, predictions, union, n=6))
    metrics = dict(run=str(run_dir), mode=run['mode'], config=run.get('source_config') or run['config'],
                   joints=list(union.joint_names), joint_datasets=[list(s) for s in union.sources],
                   table=results_rows(entries), flip_test=flip_test,
                   table_other=results_rows({e: dict(metrics=v['metrics_flip' if not flip_test else 'metrics_no_flip'])
                                             for e, v in entries.items()}),
                   checkpoints={e: v['checkpoint'] for e, v in entries.items()},
                   entries={e: v['metrics'] for e, v in entries.items()},
                   entries_no_flip={e: v['metrics_no_flip'] for e, v in entries.items()},
                   boxes=box_sources(cfg.datasets),
                   cost=cost, exports=exports, training=dict(epochs=run['epochs'], batch_size=run['batch_size']))
    written = {}
    if 'json' in formats:
        written['json'] = atomic_write_text(out / 'metrics.json',
                                            json.dumps(finite(metrics), indent=1, allow_nan=False))
    if 'md' in formats:
        written['md'] = atomic_write_text(out / 'report.md', render_markdown(metrics))
    if 'html' in formats:
        written['html'] = atomic_write_text(out / 'report.html', render_html(metrics, figures))
    if 'h5' in formats:
        k, s = predictions
        write_predictions_h5(out / 'predictions.h5', dataset=table.dataset, image_id=table.image_id,
                             instance_key=table.instance_key, bbox=table.bbox, keypoints=k, scores=s,
                             joint_names=list(union.joint_names), skeleton_links=union.links,
                             skeleton_name=union.name)
        written['h5'] = out / 'predictions.h5'
    return written.get('html') or written.get('md') or out


def teacher_cost(cfg, run, entries) -> dict:
    """What the teachers cost: forward seconds paid once in the dump against what online
    distillation would pay over the run's epochs; cache size and fidelity; training throughput."""
    train_cache = cache_path(cfg, 'train')
    if not train_cache.exists():
        return {}
    c = open_cache(train_cache)
    stats = c.manifest.get('stats', {})
    n_train = c.n_instances
    epochs = int(run['epochs'])
    per_teacher = {}
    for t, st in stats.items():
        per_row = st['forward_seconds'] / max(st['rows'], 1)
        per_teacher[t] = dict(rows=st['rows'], forward_seconds=st['forward_seconds'],
                              seconds_per_instance=per_row, device=st.get('device'),
                              online_seconds=per_row * n_train * epochs)
    paid = sum(v['forward_seconds'] for v in per_teacher.values())
    online = sum(v['online_seconds'] for v in per_teacher.values())
    logs = {e: v.get('log', []) for e, v in entries.items() if v.get('log')}
    ips = {e: float(np.median([r['images_per_s'] for r in lg])) for e, lg in logs.items() if lg}
    return dict(train_instances=n_train, views=c.n_views, epochs=epochs, teachers=per_teacher,
                teacher_seconds_paid_once=paid, teacher_seconds_online=online,
                saving_factor=online / paid if paid else None,
                cache_bytes=dir_bytes(train_cache), cache_bytes_val=dir_bytes(cache_path(cfg, 'val'))
                if cache_path(cfg, 'val').exists() else None,
                train_images_per_s=ips,
                fidelity={t: st.get('fidelity') for t, st in stats.items()},
                input_checks=c.manifest.get('input_checks', []),
                offline_vs_online=offline_vs_online_result(cfg))


def offline_vs_online_result(cfg) -> dict | None:
    """The last offline-vs-online result for this config's work_dir: seeds, the all-joints paired deltas
    and the checks; None when the benchmark has not run for it."""
    path = resolve(cfg.work_dir) / OFFLINE_VS_ONLINE_FILE
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    return dict(file=str(path), seeds=r['seeds'], epochs=r['epochs'], checks=r['checks'],
                all_joints={col: {k: r['paired'][col][k] for k in ('delta', 'delta_se', 'noise_floor')}
                            for col in r['paired'] if col.endswith(' pck_all')})


def export_student(folder: RunFolder, run: dict, student, out: Path, onnx: bool, union) -> dict:
    """The student as an mmpose checkpoint + config (its dataset_info: the joints of the student's
    skeleton, the run's `union`) (and ONNX, checked with onnxruntime)."""
    from outputs.export import check_onnx, dataset_meta_from_skeleton, export_mmpose, export_onnx
    from teachers.checkpoints import load_checkpoint, state_dict_from_checkpoint
    checkpoint = folder.scored_checkpoint()[0]  # the one the report scores
    sd = state_dict_from_checkpoint(load_checkpoint(checkpoint))
    exports = {'mmpose': {k: str(v) for k, v in export_mmpose(
        sd, folder.model_config(), out / 'export', dataset_meta_from_skeleton(model_skeleton(student.skeleton_name, union))).items()}}
    if onnx:
        onnx_path = out / 'export' / 'student.onnx'
        student_cpu = load_model(folder.model_config(), checkpoint, device='cpu').eval()
        export_onnx(student_cpu, tuple(student_cpu.input_size), onnx_path)
        exports['onnx'] = dict(path=str(onnx_path), max_abs_diff=float(check_onnx(onnx_path, student_cpu)))
    return exports


def example_images(table, predictions, union, n=6):
    """A few val images with the student's skeleton (`union`) drawn (PNG bytes)."""
    import cv2
    kpts, scores = predictions
    rows = np.linspace(0, len(table) - 1, num=min(n, len(table))).astype(int)
    images = decode_grouped(table.image_path[rows])
    out = []
    for img, r in zip(images, rows):
        # Crop around the person, upscale, then draw, so lines keep a readable width.
        x1, y1, x2, y2 = table.bbox[r]
        pad = 0.15 * max(x2 - x1, y2 - y1)
        x1, y1 = int(max(x1 - pad, 0)), int(max(y1 - pad, 0))
        x2, y2 = int(min(x2 + pad, img.shape[1])), int(min(y2 + pad, img.shape[0]))
        crop = img[y1:y2, x1:x2]
        if crop.size == 0:
            crop, x1, y1 = img, 0, 0
        scale = 240 / max(crop.shape[0], 1)
        crop = cv2.resize(crop, (max(int(crop.shape[1] * scale), 1), 240))
        kp = (kpts[r] - np.array([x1, y1], np.float32)) * scale
        crop = draw_skeleton(crop, kp, scores[r], union)
        out.append((f'{table.dataset[r]} {Path(table.image_path[r]).name}', cv2.imencode('.png', crop)[1].tobytes()))
    return out

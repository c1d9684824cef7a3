"""What the report says, apart from how it is drawn: the results table (rows and columns, in the
seed paper's layout), the legend, box-source, cost and checkpoint lines and the verdict. Pure functions
of the metrics dict; outputs/report.py renders them (HTML, Markdown, plots)."""
from __future__ import annotations

import numpy as np

PCT = 100.0


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def results_rows(entries: dict) -> dict:
    """{'columns': [...], 'rows': [[name, v1, ...], ...]} — metrics in percent, None where not applicable,
    'not computed: <why>' where the metric cannot be computed for any model (e.g. PCKh without head boxes)."""
    metrics = {e: v['metrics'] for e, v in entries.items()}
    datasets = sorted({ds for m in metrics.values() for ds in m})
    cols = []  # (name, metric path, path of the reason it was not computed)
    for ds in datasets:
        why = (ds, 'not_computed', 'pckh')
        if any(_get(m, ds, 'pckh@0.5') or _get(m, *why) for m in metrics.values()):
            cols += [(f'{ds} PCKh@0.5', (ds, 'pckh@0.5', 'mean'), why),
                     (f'{ds} PCKh@0.1', (ds, 'pckh@0.1', 'mean'), why)]
        if any(_get(m, ds, 'coco') for m in metrics.values()):
            cols += [(f'{ds} AP', (ds, 'coco', 'AP'), None), (f'{ds} AP50', (ds, 'coco', 'AP50'), None),
                     (f'{ds} AP75', (ds, 'coco', 'AP75'), None), (f'{ds} AR', (ds, 'coco', 'AR'), None)]
    for ds in datasets:
        if any(_get(m, ds, 'pck_truth') for m in metrics.values()):
            k = _all_joints([_get(m, ds, 'pck_truth') for m in metrics.values()])
            cols += [(f'{ds} PCK own joints', (ds, 'pck_truth', 'annotated'), None),
                     (f'{ds} PCK missing joints', (ds, 'pck_truth', 'lacking'), None),
                     (f'{ds} PCK {k}', (ds, 'pck_truth', 'all'), None)]
    rows = []
    for e, m in metrics.items():
        row = [e]
        for _, path, why in cols:
            v = _get(m, *path)
            reason = _get(m, *why) if why else None
            row.append(f'not computed: {reason}' if v is None and reason else
                       None if v is None or (isinstance(v, float) and np.isnan(v)) else round(float(v) * PCT, 1))
        rows.append(row)
    return dict(columns=['model'] + [c for c, _, _ in cols], rows=rows)


def _all_joints(pck_truths) -> str:
    """'all K' (K: the union's joints, from a PCK result's per_joint), or 'all joints' without one."""
    counts = [len(p['per_joint']) for p in pck_truths if isinstance(p, dict) and 'per_joint' in p]
    return f'all {counts[0]}' if counts else 'all joints'


def _num(v) -> bool:
    """A cell holding a score (not None, not a 'not computed: ...' note)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(v):
    return '–' if v is None else v if isinstance(v, str) else f'{v:.1f}'


def legend_lines(metrics: dict) -> list[str]:
    """What the results table's columns and cells mean: only the columns and cell kinds it has (real
    data has no synthetic-truth columns), then where the COCO val boxes came from."""
    t = metrics['table']
    cols, cells = t['columns'], [c for r in t['rows'] for c in r[1:]]
    lines = []
    if any('PCKh' in c for c in cols):
        lines.append('PCKh: MPII convention (mean without pelvis and thorax), head-box normalised.')
    if any(c.endswith(' AP') for c in cols):
        lines.append('AP: pycocotools COCOeval, with mmpose\'s rescoring and OKS-NMS.')
    if any('PCK own joints' in c for c in cols):
        k = len(metrics.get('joints') or ())
        lines.append(f'"PCK own / missing joints / all {k}": PCK@0.5 (head-size normalised) against the full '
                     f'{k}-joint truth of the synthetic twins, on the joints the dataset annotates / the joints '
                     'it never annotates / all of them.')
    if metrics.get('joints') and metrics.get('joint_datasets'):
        types = list(dict.fromkeys(t for ds in metrics['joint_datasets'] for t in ds))
        lines.append(f"Joints: the union of the {', '.join(types)} skeletons by joint name "
                     f"({len(metrics['joints'])}): {', '.join(metrics['joints'])}.")
    if any(v is None for v in cells):
        lines.append('– : not applicable (the model does not predict the joints that metric needs).')
    notes = sorted({(c.split()[0], v) for r in t['rows'] for c, v in zip(cols[1:], r[1:]) if isinstance(v, str)})
    for ds, note in notes:
        lines.append(f'"{note}" ({ds} PCKh): PCKh divides each error by the person\'s head size, which comes '
                     f'from datasets.{ds}.val.head_boxes_file'
                     + ('; the config has none, so no model is scored there.' if note.endswith('no head-box file')
                        else '.'))
    lines += box_lines(metrics.get('boxes') or {})
    if 'flip_test' in metrics:
        lines.append('Flip test ' + ('on' if metrics['flip_test'] else 'off') + ' (evaluation.flip_test; the '
                     'table below has the other): each model\'s output averaged with its output on the mirrored '
                     'crop (the teachers\': from the val cache\'s mirrored view).')
    if checkpoint_line(metrics):
        lines.append(checkpoint_line(metrics))
    return lines


def box_lines(boxes: dict) -> list[str]:
    """One line per COCO-type val set: the person boxes the models were run on (AP depends on them)."""
    out = []
    for ds, b in boxes.items():
        if b.get('det_file'):
            out.append(f'{ds} val boxes: detections from {b["det_file"]} (score >= {b.get("det_score_thr", 0.0)}).')
        else:
            out.append(f'{ds} val boxes: ground-truth boxes from the annotation file.')
    return out


def _cost_lines(cost: dict) -> list[str]:
    if not cost:
        return ['No training cache found: no cost accounting.']
    factor, views = cost['saving_factor'], _count(cost['views'], 'epoch')
    if round(factor, 1) == 1.0:  # what the line prints as 1.0x either way is no saving
        saving = f'no saving (break-even: as many epochs as cached views, {views}).'
    elif factor > 1:
        saving = f"**{factor:.1f}×** less teacher compute."
    else:
        saving = f"offline costs **{1 / factor:.1f}×** more (fewer epochs than cached views; break-even at {views})."
    lines = [
        f"Training set: {cost['train_instances']} instances, {_count(cost['views'], 'cached view')} each, "
        f"{_count(cost['epochs'], 'training epoch')}.",
        f"Teacher forward time paid once in the dump: **{cost['teacher_seconds_paid_once']:.1f} s**; "
        f"online distillation would pay **{cost['teacher_seconds_online']:.1f} s** over the same epochs "
        f"(measured per-instance teacher time × instances × epochs) — " + saving,
        f"Cache size: {cost['cache_bytes'] / 2**20:.1f} MiB (train)"
        + (f", {cost['cache_bytes_val'] / 2**20:.1f} MiB (val)" if cost.get('cache_bytes_val') else '') + '.',
    ]
    for t, v in cost['teachers'].items():
        lines.append(f"Teacher {t}: {v['rows']} rows, {v['forward_seconds']:.1f} s forward "
                     f"({v['seconds_per_instance'] * 1e3:.2f} ms/instance on {v['device']}).")
    for check in cost.get('input_checks', []):  # annotation records skipped (and filtered as mmpose does) at load
        skipped, filtered = check.get('skipped') or {}, check.get('filtered') or {}
        lines.append(f"Input {check['file'].rsplit('/', 1)[-1]}: {check['instances']} instances"
                     + (f", {sum(skipped.values())} skipped (" + ', '.join(f'{r}: {n}' for r, n in skipped.items())
                        + ')' if skipped else ', none skipped')
                     + (f", {sum(filtered.values())} filtered as mmpose does ("
                        + ', '.join(f'{r}: {n}' for r, n in filtered.items()) + ')' if filtered else '') + '.')
    for e, ips in cost.get('train_images_per_s', {}).items():
        lines.append(f'Training throughput, {e}: {ips:.0f} images/s (median over epochs).')
    for t, f in (cost.get('fidelity') or {}).items():
        if f and f.get('kl'):
            # T < 1: the stored rows sharpened as the KD loss sharpens them (beta / train.temperature),
            # i.e. the distribution the student is distilled towards; T = 1: the rows as stored.
            kl = ', '.join(f"{v['mean']:.2e} " + ('on the stored rows' if float(temp) == 1.0 else
                                                  f'at the distillation target (rows sharpened {1 / float(temp):g}x)')
                           for temp, v in f['kl'].items())
            lines.append(f"Cache fidelity, {t} (window {f.get('window_x')}/{f.get('window_y')} bins, "
                         f"{f.get('tail_blocks_x')}/{f.get('tail_blocks_y')} tail blocks, "
                         f"{f'{lv} code levels' if (lv := f.get('levels')) else 'fp16'}; "
                         "benchmarks/offline_vs_online.py measures what it costs the student): "
                         f"mean KL(full‖stored) {kl}; argmax agreement {f.get('argmax_agreement', float('nan')) * 100:.2f}%; "
                         f"{f.get('bytes_per_row', float('nan')):.0f} B per instance·view (full fp16: "
                         f"{f.get('raw_fp16_bytes_per_row', float('nan')):.0f} B).")
    ovo = cost.get('offline_vs_online')
    if ovo:
        deltas = '; '.join(f"{col.split()[0].upper()}-style {v['delta']:+.1f}"
                           + ('' if v['delta_se'] is None else f" ± {v['delta_se']:.1f}")
                           + ('' if v['noise_floor'] is None else f" (noise floor {v['noise_floor']:.1f})")
                           for col, v in ovo['all_joints'].items())
        lines.append(f"Cached against live teachers (benchmarks/offline_vs_online.py, last result {ovo['file']}, "
                     f"seeds {', '.join(map(str, ovo['seeds']))}, {ovo['epochs']} epochs): student PCK on all "
                     f"joints, offline minus online, mean over the seeds ± its standard error: {deltas}.")
    elif 'offline_vs_online' in cost:
        lines.append('Cached against live teachers: not measured for this run\'s work_dir yet '
                     '(python benchmarks/offline_vs_online.py).')
    return lines


def _verdict(metrics) -> tuple[str, bool]:
    t = metrics['table']
    cols = t['columns']
    rows = {r[0]: r for r in t['rows']}
    student = next((r for n, r in rows.items() if n.startswith('student')), None)
    base = rows.get('baseline (no KD)')
    if not student or not base:
        return 'No baseline run to compare against.', True
    gains = []
    for i, c in enumerate(cols[1:], start=1):
        if _num(student[i]) and _num(base[i]):
            gains.append((c, student[i] - base[i]))
    if not gains:
        return 'No comparable metric.', True
    better = sum(g > 0 for _, g in gains)
    miss = [g for c, g in gains if 'missing' in c]
    every = [g for c, g in gains if ' PCK all ' in c]
    k = len(metrics.get('joints') or ())
    text = (f'Distilled student vs no-distillation baseline: better on {better} of {len(gains)} metrics'
            + (f', {np.mean(every):+.1f} PCK points on all {k} joints' if every else '')
            + (f' and {np.mean(miss):+.1f} on the joints each dataset lacks (on average)' if miss else '')
            + _cost_clause(metrics.get('cost') or {}) + '.')
    # A student can only gain what its teachers know: say so when they are weak on their own joints.
    own = [(n, r[i]) for n, r in rows.items() if n.startswith('teacher')
           for i, c in enumerate(cols) if c.startswith(n.split()[-1] + ' ') and 'own joints' in c and _num(r[i])]
    weak = [(n, v) for n, v in own if v < 50]
    if weak:
        text += (' The teachers are weak on their own joints (' + ', '.join(f'{n}: PCK {v:.0f}%' for n, v in weak)
                 + '), which caps what the student can gain from them.')
    # A dataset's missing joints are taught only by the other dataset's teacher, on images unlike its
    # own: when that teacher scores below what the baseline learns from the other dataset's labels,
    # distillation pulls those joints down. Name the numbers.
    for i, c in enumerate(cols):
        if 'missing' not in c or not _num(base[i]) or not _num(student[i]) or student[i] >= base[i]:
            continue
        teach = [(n, r[i]) for n, r in rows.items() if n.startswith('teacher') and _num(r[i])]
        if teach and max(v for _, v in teach) < base[i]:
            text += (f' On {c} the student ({student[i]:.1f}) learns from ' + ', '.join(f'{n} ({v:.1f})' for n, v in teach)
                     + f', which is below the baseline ({base[i]:.1f}): its teacher is weaker there than '
                     'ground truth from the other dataset.')
    return text, better * 2 >= len(gains) and not weak


def _cost_clause(cost: dict) -> str:
    """', for X s of teacher compute paid once against Y s online (F x less)' — either direction."""
    paid, online = cost.get('teacher_seconds_paid_once'), cost.get('teacher_seconds_online')
    if not paid or not online:
        return ''
    epochs = _count(cost['epochs'], 'epoch')
    if round(online / paid, 1) == 1.0:
        return (f'; its teachers cost {paid:.0f} s of compute paid once, as much as online distillation over '
                f'the same {epochs} ({online:.0f} s): no saving, the break-even of {_count(cost["views"], "epoch")}')
    if online > paid:
        return (f'; its teachers cost {paid:.0f} s of compute paid once, against {online:.0f} s for online '
                f'distillation over the same {epochs} ({online / paid:.1f}x less)')
    return (f'; its teachers cost {paid:.0f} s of compute paid once, MORE than the {online:.0f} s online '
            f'distillation would pay over {epochs} ({paid / online:.1f}x; the cache pays off '
            f'only when epochs exceed the {_count(cost["views"], "cached view")})')


def _count(n, noun: str) -> str:
    """'1 epoch', '24 epochs'."""
    return f'{n} {noun}' + ('' if n == 1 else 's')


def _other_title(metrics: dict) -> str:
    return 'Without flip test' if metrics.get('flip_test') else 'With flip test'


def checkpoint_line(metrics: dict) -> str | None:
    """Which checkpoint each trained model's row scores (best.pth by evaluation.save_best, or last.pth)."""
    runs = {e: c for e, c in (metrics.get('checkpoints') or {}).items() if c != 'shipped'}
    return 'Scored checkpoints: ' + '; '.join(f'{e}: {c}' for e, c in runs.items()) + '.' if runs else None

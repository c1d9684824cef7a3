"""Rendering of the report: a results table in the seed paper's layout, curves, per-joint bars,
example skeletons and the cost accounting. Pure functions of the metrics dict (and PNG bytes);
report.html is self-contained (images embedded as base64)."""
from __future__ import annotations

import base64
import html
import io
import re

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


def render_markdown(metrics: dict) -> str:
    t = metrics['table']
    out = [f"# Distillation report — {metrics['config']}", '',
           f"Run: `{metrics['run']}` (mode {metrics['mode']}). Metrics in percent on the val split.", '',
           f'**Verdict:** {_verdict(metrics)[0]}', '',
           '## Results', '',
           '| ' + ' | '.join(t['columns']) + ' |', '|' + '---|' * len(t['columns'])]
    for row in t['rows']:
        out.append('| ' + ' | '.join([row[0]] + [_fmt(v) for v in row[1:]]) + ' |')
    for line in legend_lines(metrics):  # a paragraph each: markdown would run lines together
        out += ['', line]
    if metrics.get('table_other'):
        o = metrics['table_other']
        out += ['', f'### {_other_title(metrics)}', '', '| ' + ' | '.join(o['columns']) + ' |', '|' + '---|' * len(o['columns'])]
        out += ['| ' + ' | '.join([row[0]] + [_fmt(v) for v in row[1:]]) + ' |' for row in o['rows']]
    out += ['', '## Compute', ''] + [f'- {x}' for x in _cost_lines(metrics['cost'])]
    ex = metrics.get('exports', {})
    out += ['', '## Exports', '']
    for k, v in ex.items():
        out.append(f'- {k}: ' + ', '.join(f'{a}: `{b}`' for a, b in v.items()))
    return '\n'.join(out) + '\n'


def _png_b64(png: bytes) -> str:
    return 'data:image/png;base64,' + base64.b64encode(png).decode()


def _fig_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=110, bbox_inches='tight')
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


TRUTH_PANEL = 'PCK@0.5 vs full truth (every union joint, mean over datasets)'


def curve_panels(logs: dict) -> dict:
    """{panel: {run: (epochs, scores in %)}}: one val panel per metric, never two metrics averaged into one
    line: PCK@0.5 against the full truth where the datasets have one (the synthetic twins), else each
    dataset's own metric (COCO AP, MPII PCKh@0.5) on its own panel."""
    panels = {}
    for name, log in logs.items():
        for r in log:
            val = r.get('val')
            if not val:
                continue
            truth = [v for m in val.values() if (v := _get(m, 'pck_truth', 'all')) is not None]
            scores = {TRUTH_PANEL: float(np.mean(truth))} if truth else {}
            for ds, m in val.items():
                if truth:
                    break
                ap, pckh = _get(m, 'coco', 'AP'), _get(m, 'pckh@0.5', 'mean')
                if ap is not None:
                    scores[f'{ds} AP (OKS)'] = ap
                elif pckh is not None:
                    scores[f'{ds} PCKh@0.5'] = pckh
            for panel, v in scores.items():
                epochs, values = panels.setdefault(panel, {}).setdefault(name, ([], []))
                epochs.append(r['epoch'])
                values.append(float(v) * PCT)
    return panels


def curves_figure(logs: dict):
    """The figure of figure_curves: training loss, then one panel per val metric (curve_panels), each
    with whole-epoch ticks, the val panels in %, titles wrapped to their panel's width."""
    import textwrap
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    logs = {k: v for k, v in logs.items() if v}
    if not logs:
        return None
    panels = curve_panels(logs)
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(4.2 * (1 + len(panels)), 3.6), squeeze=False,
                             layout='constrained')
    axes = axes[0]
    for name, log in logs.items():
        axes[0].plot([r['epoch'] for r in log], [r.get('loss_total', np.nan) for r in log], marker='.', label=name)
    axes[0].set(title='training loss (total)', xlabel='epoch', ylabel='loss (its terms differ by mode)')
    for ax, (panel, runs) in zip(axes[1:], panels.items()):
        for name, (epochs, values) in runs.items():
            ax.plot(epochs, values, marker='o', label=name)
        ax.set(xlabel='epoch', ylabel=f'val {panel.split(" (")[0]} (%)')
        ax.set_title(textwrap.fill('val ' + panel, 38))
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=.3)
        ax.legend(fontsize=8)
    return fig


def figure_curves(logs: dict) -> bytes | None:
    """Training loss and the val metrics per epoch for each run that has a log (curves_figure)."""
    fig = curves_figure(logs)
    return None if fig is None else _fig_png(fig)


def figure_per_joint(entries: dict, union) -> bytes | None:
    """Per-joint PCK against the full truth (or PCKh), one bar group per joint of the `union`, one bar
    per model; the joints the first dataset lacks shaded."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    series = {}
    for e, v in entries.items():
        per = [_get(m, 'pck_truth', 'per_joint') for m in v['metrics'].values()]
        per = [np.asarray(p, float) for p in per if p is not None]
        if per:
            stack = np.stack(per)
            counted = np.isfinite(stack).sum(0)  # a joint no dataset counts stays NaN, without a warning
            series[e] = np.where(counted > 0, np.nansum(stack, 0) / np.maximum(counted, 1), np.nan) * PCT
    if not series:
        return None
    names = union.joint_names
    first = union.sources[0][0]
    added = [j for j, s in enumerate(union.sources) if s[0] != first]  # after the first dataset's joints
    fig, ax = plt.subplots(figsize=(12, 3.6))
    w = 0.8 / len(series)
    for i, (e, vals) in enumerate(series.items()):
        ax.bar(np.arange(len(names)) + i * w, np.nan_to_num(vals), width=w, label=e)
    ax.set_xticks(np.arange(len(names)) + 0.4 - w / 2, names, rotation=60, ha='right', fontsize=8)
    if added:
        ax.axvspan(added[0] - 0.5 + 0.4 - w / 2 - 0.5, len(names) - 0.1, color='k', alpha=.06)
    ax.set(ylabel='PCK@0.5 (%)', title=f'per-joint PCK vs full truth, mean over datasets (shaded: joints {first} lacks)')
    ax.legend(fontsize=8, ncol=4)
    ax.grid(axis='y', alpha=.3)
    return _fig_png(fig)


def draw_skeleton(img, keypoints, scores, skeleton, thr=0.1, radius=None, thickness=None):
    """Draw a skeleton on a BGR image (in place); low-score joints are left out. In a union (COCO + MPII:
    17 + 4 joints), the joints the first dataset lacks (MPII's pelvis, thorax, upper_neck, head_top) and
    their links are green, the joints only the first dataset annotates (COCO's face points) magenta, the
    rest orange / yellow. radius / thickness default to the image size / 300 (+2 / +1)."""
    import cv2
    bone, joint, added_c, first_only_c = (255, 128, 0), (0, 200, 255), (60, 220, 60), (220, 60, 220)
    t = max(1, int(round(max(img.shape[:2]) / 300)))
    radius, thickness = radius or t + 2, thickness or t + 1
    sources = skeleton.sources or ((),) * skeleton.num_joints
    first = sources[0][:1]
    added = [bool(s) and s[:1] != first for s in sources]
    first_only = [bool(s) and s == first and len(set(x for y in sources for x in y)) > 1 for s in sources]

    def colour(j, default):
        return added_c if added[j] else first_only_c if first_only[j] else default

    for a, b in skeleton.links:
        if scores[a] > thr and scores[b] > thr:
            c = added_c if added[a] or added[b] else bone
            cv2.line(img, tuple(int(v) for v in keypoints[a]), tuple(int(v) for v in keypoints[b]), c, thickness,
                     cv2.LINE_AA)
    for j, (p, s) in enumerate(zip(keypoints, scores)):
        if s > thr:
            cv2.circle(img, tuple(int(v) for v in p), radius, colour(j, joint), -1, cv2.LINE_AA)
    return img


def draw_box(img, box, label=None, thickness=None):
    """Draw a person's xyxy box on a BGR image (in place), red, with `label` (e.g. its detection score)
    on a filled tab above its top-left corner (inside the image when the box touches the top).
    thickness defaults to the image size / 300 (+1), as draw_skeleton's bones."""
    import cv2
    red = (40, 40, 230)
    t = thickness or max(1, int(round(max(img.shape[:2]) / 300))) + 1
    x1, y1, x2, y2 = (int(round(float(v))) for v in box[:4])
    cv2.rectangle(img, (x1, y1), (x2, y2), red, t, cv2.LINE_AA)
    if label:
        scale = max(0.4, max(img.shape[:2]) / 1000)
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = y1 - h - base - 2 if y1 - h - base - 2 >= 0 else y1
        cv2.rectangle(img, (x1, top), (x1 + w + 4, top + h + base + 2), red, -1)
        cv2.putText(img, label, (x1 + 2, top + h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return img


CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.88em} th,td{padding:.35em .6em;border-bottom:1px solid #e5e5e5;text-align:right}
th{background:#f6f6f6} td:first-child,th:first-child{text-align:left}
tr.student td{font-weight:600;background:#f2f8ff} .muted{color:#777}
.verdict{padding:.8em 1em;background:#f4faf4;border-left:4px solid #4a4;margin:1em 0}
.verdict.bad{background:#fdf4f4;border-color:#c44}
.examples{display:flex;flex-wrap:wrap;gap:8px} .examples figure{margin:0;text-align:center;font-size:.75em;color:#666}
img{max-width:100%}
"""


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


def render_html(metrics: dict, figures: dict) -> str:
    t = metrics['table']
    verdict, good = _verdict(metrics)
    head = ''.join(f'<th>{html.escape(c)}</th>' for c in t['columns'])
    body = ''
    for r in t['rows']:
        cls = ' class="student"' if r[0].startswith('student') else ''
        body += (f'<tr{cls}><td>{html.escape(r[0])}</td>' + ''.join(f'<td>{html.escape(_fmt(v))}</td>' for v in r[1:])
                 + '</tr>')
    parts = [f'<!doctype html><html><head><meta charset="utf-8"><title>Distillation report</title>'
             f'<style>{CSS}</style></head><body>',
             '<h1>Distillation report</h1>',
             f'<div class="muted">config <code>{html.escape(metrics["config"])}</code> · run '
             f'<code>{html.escape(metrics["run"])}</code> · mode {html.escape(metrics["mode"])}</div>',
             f'<div class="verdict{"" if good else " bad"}">{html.escape(verdict)}</div>',
             '<h2>Results (val split, %)</h2>',
             f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>',
             '<p class="muted">' + '<br>'.join(html.escape(x) for x in legend_lines(metrics)) + '</p>']
    if metrics.get('table_other'):
        o = metrics['table_other']
        parts += [f'<h3>{_other_title(metrics)}</h3><table><thead><tr>'
                  + ''.join(f'<th>{html.escape(c)}</th>' for c in o['columns']) + '</tr></thead><tbody>'
                  + ''.join(f'<tr><td>{html.escape(r[0])}</td>' + ''.join(f'<td>{html.escape(_fmt(v))}</td>' for v in r[1:])
                            + '</tr>' for r in o['rows']) + '</tbody></table>']
    parts += [
             '<h2>What it cost</h2><ul>' + ''.join(f'<li>{_md_bold(x)}</li>' for x in _cost_lines(metrics['cost']))
             + '</ul>']
    if figures.get('curves'):
        parts.append(f'<h2>Training</h2><img src="{_png_b64(figures["curves"])}">')
    if figures.get('per_joint'):
        parts.append(f'<h2>Per joint</h2><img src="{_png_b64(figures["per_joint"])}">')
    if figures.get('examples'):
        first = (metrics.get('joint_datasets') or [['the first dataset']])[0][0]
        parts.append(f'<h2>Examples (student, {len(metrics.get("joints") or ())} joints; green: the joints '
                     f'{html.escape(first)} lacks)</h2><div class="examples">'
                     + ''.join(f'<figure><img src="{_png_b64(png)}"><figcaption>{html.escape(cap)}</figcaption>'
                               f'</figure>' for cap, png in figures['examples']) + '</div>')
    ex = metrics.get('exports', {})
    if ex:
        parts.append('<h2>Exports</h2><ul>' + ''.join(
            f'<li>{html.escape(k)}: ' + ', '.join(f'{html.escape(a)} <code>{html.escape(str(b))}</code>'
                                                  for a, b in v.items()) + '</li>' for k, v in ex.items()) + '</ul>')
    parts.append('</body></html>')
    return '\n'.join(parts)


def _md_bold(text: str) -> str:
    return re.sub(r'\*\*(.+?)\*\*', r'<b>\1</b>', html.escape(text))

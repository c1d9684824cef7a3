"""How the report is drawn (what it says is outputs/report_content.py's): report.md and report.html
with the results table, curves, per-joint bars, example skeletons and the cost accounting. Pure
functions of the metrics dict (and PNG bytes); report.html is self-contained (images embedded as base64)."""
from __future__ import annotations

import base64
import html
import io
import re

import numpy as np

from outputs.report_content import PCT, _cost_lines, _fmt, _get, _other_title, _verdict, legend_lines


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

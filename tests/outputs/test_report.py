import html

import pytest

from outputs.report import figure_curves, render_html, render_markdown
from outputs.report_content import _verdict, legend_lines, results_rows

COLUMNS = ['model', 'coco PCK own joints', 'coco PCK missing joints', 'mpii PCK own joints',
           'mpii PCK missing joints']


def _metrics(teacher_mpii_on_coco_missing, student_coco_missing):
    rows = [['teacher coco', 80.0, None, 30.0, 40.0],
            ['teacher mpii', 35.0, teacher_mpii_on_coco_missing, 75.0, None],
            ['baseline (no KD)', 60.0, 50.0, 60.0, 30.0],
            ['student (offline)', 62.0, student_coco_missing, 61.0, 45.0]]
    return {'table': {'columns': COLUMNS, 'rows': rows}}


def test_verdict_counts_gains_and_names_a_teacher_weaker_than_the_baseline():
    text, good = _verdict(_metrics(teacher_mpii_on_coco_missing=20.0, student_coco_missing=40.0))
    assert 'better on 3 of 4 metrics' in text and good
    assert 'On coco PCK missing joints the student (40.0) learns from teacher mpii (20.0)' in text
    assert 'baseline (50.0)' in text
    assert 'mpii PCK missing joints the student' not in text  # the student wins there


def test_verdict_is_silent_when_the_teacher_beats_the_baseline_or_the_student_wins():
    text, _ = _verdict(_metrics(teacher_mpii_on_coco_missing=70.0, student_coco_missing=40.0))
    assert 'learns from' not in text
    text, _ = _verdict(_metrics(teacher_mpii_on_coco_missing=20.0, student_coco_missing=55.0))
    assert 'learns from' not in text and 'better on 4 of 4 metrics' in text


def test_verdict_flags_teachers_weak_on_their_own_joints():
    m = _metrics(70.0, 55.0)
    m['table']['rows'][1][3] = 40.0  # teacher mpii on its own joints
    text, good = _verdict(m)
    assert 'weak on their own joints (teacher mpii: PCK 40%)' in text and not good


def test_verdict_states_the_gain_and_the_teacher_cost_in_either_direction():
    m = _metrics(70.0, 55.0)
    m['cost'] = {'teacher_seconds_paid_once': 50.0, 'teacher_seconds_online': 150.0, 'epochs': 24, 'views': 8}
    text, _ = _verdict(m)
    assert 'better on 4 of 4 metrics' in text and '+10.0 on the joints each dataset lacks' in text
    assert '50 s of compute paid once, against 150 s for online distillation over the same 24 epochs (3.0x less)' in text
    m['cost'] = {'teacher_seconds_paid_once': 150.0, 'teacher_seconds_online': 50.0, 'epochs': 2, 'views': 6}
    text, _ = _verdict(m)
    assert 'MORE than the 50 s online distillation would pay over 2 epochs (3.0x' in text
    assert 'epochs exceed the 6 cached views' in text


# ---- the report on real data: no synthetic truth, maybe no head boxes, GT or detection boxes ------
def _entries(mpii_metrics, coco_ap=0.7, truth=False):
    """Teacher coco, teacher mpii and a union student, as evaluate_predictions returns them."""
    coco = {'coco': {'AP': coco_ap, 'AP50': 0.9, 'AP75': 0.8, 'AR': 0.75}}
    if truth:
        coco['pck_truth'] = {'annotated': 0.8, 'lacking': 0.4, 'all': 0.7}
    return {'teacher coco': {'metrics': {'coco': coco, 'mpii': dict(mpii_metrics)}},
            'teacher mpii': {'metrics': {'coco': {}, 'mpii': dict(mpii_metrics)}},
            'student (offline)': {'metrics': {'coco': coco, 'mpii': dict(mpii_metrics)}}}


def _report_metrics(entries, boxes=None):
    return dict(config='c.py', run='r', mode='offline', table=results_rows(entries), cost={}, exports={},
                boxes=boxes if boxes is not None else {'coco': {'det_file': None}})


NO_HEAD_BOXES = {'not_computed': {'pckh': 'no head-box file'}}


def test_pckh_without_head_boxes_is_a_column_that_says_why_not_a_missing_one():
    m = _report_metrics(_entries(NO_HEAD_BOXES))
    table = m['table']
    assert 'mpii PCKh@0.5' in table['columns'] and 'mpii PCKh@0.1' in table['columns']
    i = table['columns'].index('mpii PCKh@0.5')
    assert [r[i] for r in table['rows']] == ['not computed: no head-box file'] * 3
    md, page = render_markdown(m), render_html(m, {})
    # every model's row says it, not '–' (which blames the model for lacking joints)
    assert md.count('| not computed: no head-box file | not computed: no head-box file |') == 3
    for text in (md, page):
        assert 'datasets.mpii.val.head_boxes_file; the config has none' in text
    assert '<td>not computed: no head-box file</td>' in page
    entries = _entries(NO_HEAD_BOXES)
    entries['baseline (no KD)'] = _entries(NO_HEAD_BOXES, coco_ap=0.6)['student (offline)']
    text, _ = _verdict(_report_metrics(entries))  # the notes are not metrics to compare
    assert 'better on 1 of 4 metrics' in text


def test_pckh_with_head_boxes_keeps_numbers_and_dashes():
    pckh = {'pckh@0.5': {'mean': 0.8}, 'pckh@0.1': {'mean': 0.3}}
    entries = _entries(pckh)
    entries['teacher coco']['metrics']['mpii'] = {}  # a COCO teacher lacks head top, thorax, pelvis
    m = _report_metrics(entries)
    i = m['table']['columns'].index('mpii PCKh@0.5')
    assert [r[i] for r in m['table']['rows']] == [None, 80.0, 80.0]
    md = render_markdown(m)
    assert 'not computed' not in md and '– : not applicable (the model does not predict' in md


def test_val_panels_say_what_they_plot_and_count_an_ap_of_zero():
    from outputs.report import TRUTH_PANEL, curve_panels
    truth = {'coco': {'pck_truth': {'all': 0.6}, 'coco': {'AP': 0.1}}, 'mpii': {'pck_truth': {'all': 0.4}}}
    assert curve_panels({'s': [{'epoch': 1, 'val': truth}]}) == {
        TRUTH_PANEL: {'s': ([1], [pytest.approx(50.0)])}}
    real = {'coco': {'coco': {'AP': 0.0}}, 'mpii': {'pckh@0.5': {'mean': 0.5}}}
    log = [{'epoch': 1, 'val': real}, {'epoch': 2}]
    assert curve_panels({'s': log, 'b': log}) == {  # an AP of 0.0 is a score (`or` dropped it)
        'coco AP (OKS)': {'s': ([1], [0.0]), 'b': ([1], [0.0])},
        'mpii PCKh@0.5': {'s': ([1], [pytest.approx(50.0)]), 'b': ([1], [pytest.approx(50.0)])}}
    no_head = [{'epoch': 1, 'val': {'coco': {'coco': {'AP': 0.0}}, 'mpii': NO_HEAD_BOXES}}]
    assert list(curve_panels({'s': no_head})) == ['coco AP (OKS)']
    assert curve_panels({'s': [{'epoch': 1, 'val': {'mpii': NO_HEAD_BOXES}}]}) == {}
    assert figure_curves({'s': log}) is not None


def test_legend_describes_only_the_columns_the_table_has():
    real = _report_metrics(_entries({'pckh@0.5': {'mean': 0.8}, 'pckh@0.1': {'mean': 0.3}}))
    synthetic = _report_metrics(_entries({'pckh@0.5': {'mean': 0.8}, 'pckh@0.1': {'mean': 0.3}}, truth=True))
    assert 'coco PCK own joints' in synthetic['table']['columns']
    for render in (render_markdown, lambda m: render_html(m, {})):
        real_text, synthetic_text = render(real), render(synthetic)
        assert 'PCKh: MPII convention' in real_text and 'AP: pycocotools COCOeval' in real_text
        assert 'synthetic twins' not in real_text and 'PCK own / missing' not in real_text
        assert 'synthetic twins' in synthetic_text and 'PCK own / missing' in synthetic_text
    coco_only = {'student': {'metrics': {'coco': {'coco': {'AP': 0.5, 'AP50': 0.7, 'AP75': 0.5, 'AR': 0.6}}}}}
    assert legend_lines(_report_metrics(coco_only)) == [
        "AP: pycocotools COCOeval, with mmpose's rescoring and OKS-NMS.",
        'coco val boxes: ground-truth boxes from the annotation file.']


def test_report_states_the_coco_val_box_source():
    gt = _report_metrics(_entries(NO_HEAD_BOXES))
    det = _report_metrics(_entries(NO_HEAD_BOXES),
                          boxes={'coco': {'det_file': '/d/person_dets.json', 'det_score_thr': 0.3}})
    for render in (render_markdown, lambda m: html.unescape(render_html(m, {}))):
        assert 'coco val boxes: ground-truth boxes from the annotation file.' in render(gt)
        assert 'coco val boxes: detections from /d/person_dets.json (score >= 0.3).' in render(det)
        assert 'ground-truth boxes' not in render(det)


def _cost(offline_vs_online):
    return {'train_instances': 10, 'views': 8, 'epochs': 20, 'teacher_seconds_paid_once': 5.0,
            'teacher_seconds_online': 25.0, 'saving_factor': 5.0, 'cache_bytes': 2 ** 20, 'teachers': {},
            'offline_vs_online': offline_vs_online}


def test_the_cost_section_quotes_the_offline_vs_online_result_or_says_how_to_get_it():
    from outputs.report_content import _cost_lines
    ovo = dict(file='outputs/demo/offline_vs_online.json', seeds=[0, 1, 2], epochs=20, checks={},
               all_joints={'coco pck_all': dict(delta=-0.43, delta_se=0.8, noise_floor=2.1),
                      'mpii pck_all': dict(delta=0.6, delta_se=None, noise_floor=None)})
    line = [x for x in _cost_lines(_cost(ovo)) if x.startswith('Cached against live teachers')][0]
    assert 'seeds 0, 1, 2, 20 epochs' in line
    assert 'COCO-style -0.4 ± 0.8 (noise floor 2.1); MPII-style +0.6.' in line
    line = [x for x in _cost_lines(_cost(None)) if x.startswith('Cached against live teachers')][0]
    assert 'not measured' in line and 'benchmarks/offline_vs_online.py' in line


def test_the_cost_section_counts_skipped_and_filtered_annotations():
    from outputs.report_content import _cost_lines
    cost = dict(_cost(None), input_checks=[
        dict(file='/d/person_keypoints_train.json', instances=12, skipped={'non-finite box': 1},
             filtered={'crowd': 1, 'num_keypoints 0': 2}),
        dict(file='/d/mpii_train.json', instances=5, skipped={})])  # written before filtered was counted
    lines = [x for x in _cost_lines(cost) if x.startswith('Input ')]
    assert lines == ['Input person_keypoints_train.json: 12 instances, 1 skipped (non-finite box: 1), '
                     '3 filtered as mmpose does (crowd: 1, num_keypoints 0: 2).',
                     'Input mpii_train.json: 5 instances, none skipped.']


# ---- the training curves and the break-even wording ---------------------------------------------------
def _real_log(epochs):
    return [{'epoch': e, 'loss_total': 1.0 / e, 'val': {'coco': {'coco': {'AP': 0.3 + 0.01 * e}},
                                                      'mpii': {'pckh@0.5': {'mean': 0.5 + 0.02 * e}}}}
            for e in range(1, epochs + 1)]


def test_curves_put_ap_and_pckh_on_their_own_panels_in_percent_with_whole_epoch_ticks():
    from outputs.report import curve_panels, curves_figure
    logs = {'student (offline)': _real_log(7), 'baseline (no KD)': _real_log(3)}
    panels = curve_panels(logs)
    assert list(panels) == ['coco AP (OKS)', 'mpii PCKh@0.5']
    assert panels['coco AP (OKS)']['baseline (no KD)'] == ([1, 2, 3], [pytest.approx(31.0), pytest.approx(32.0),
                                                                       pytest.approx(33.0)])
    fig = curves_figure(logs)
    fig.canvas.draw()
    loss, ap, pckh = fig.axes
    assert ap.get_ylabel().endswith('(%)') and pckh.get_ylabel().endswith('(%)') and 'AP' in ap.get_title()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    renderer = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes] + \
            [ax.yaxis.label.get_window_extent(renderer) for ax in fig.axes]
    for i, a in enumerate(boxes):  # no title or axis label runs into another
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)


def test_curves_of_the_synthetic_twins_plot_pck_vs_truth_with_a_wrapped_title_inside_its_panel():
    from outputs.report import curves_figure
    log = [{'epoch': e, 'loss_total': 1.0, 'val': {'coco': {'pck_truth': {'all': 0.5}}}} for e in (1, 2)]
    fig = curves_figure({'student (offline)': log})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    loss, pck = fig.axes
    assert pck.get_title().startswith('val PCK@0.5 vs full truth') and '\n' in pck.get_title()
    assert not loss.title.get_window_extent(renderer).overlaps(pck.title.get_window_extent(renderer))


def test_break_even_is_called_no_saving_and_one_epoch_is_singular():
    from outputs.report_content import _cost_clause, _cost_lines
    even = dict(_cost(None), teacher_seconds_paid_once=25.0, saving_factor=1.0, epochs=1, views=1)
    line = [x for x in _cost_lines(even) if x.startswith('Teacher forward time')][0]
    assert 'no saving' in line and '1.0×' not in line and 'break-even' in line and '1 epoch)' in line
    training_set = [x for x in _cost_lines(even) if x.startswith('Training set')][0]
    assert training_set.endswith('1 cached view each, 1 training epoch.')
    clause = _cost_clause(dict(even, teacher_seconds_online=25.0))
    assert 'no saving' in clause and '1 epoch' in clause and '1 epochs' not in clause and '1.0x' not in clause
    assert 'same 1 epoch (' in _cost_clause(dict(even, teacher_seconds_online=50.0))
    more = [x for x in _cost_lines(dict(even, saving_factor=0.5, views=2)) if x.startswith('Teacher')][0]
    assert '**2.0×** more' in more and 'break-even at 2 epochs' in more

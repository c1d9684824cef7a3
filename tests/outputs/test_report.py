from outputs.report import _verdict

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

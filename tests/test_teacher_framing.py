import numpy as np

from benchmarks.teacher_framing import square_boxes


def test_square_boxes_keep_the_centre_and_take_the_longer_side():
    boxes = np.array([[10, 20, 40, 120], [0, 0, 50, 10]], np.float32)  # tall, wide
    sq = square_boxes(boxes)
    np.testing.assert_allclose(sq, [[-25, 20, 75, 120], [0, -20, 50, 30]])
    np.testing.assert_allclose((sq[:, :2] + sq[:, 2:]) / 2, (boxes[:, :2] + boxes[:, 2:]) / 2)

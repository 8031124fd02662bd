"""The annotated image: skeleton where the camera sees it, phase banner, shaded grid."""

import numpy as np
from pitch_predictor.kinect import JOINT_INDEX
from pitch_predictor.runtime.annotate import annotate_frame, project_joints
from runtime_fixtures import REST_POSE


def test_projection_is_the_kinect_pinhole():
    # A point on the optical axis lands in the image centre; +x (sensor's left) goes left.
    centre = project_joints(np.array([[0.0, 0.0, 2.0]]), 960, 540)[0]
    np.testing.assert_allclose(centre, [479.5, 269.5], atol=0.6)
    # 0.5 m to the left at 2 m: fx * 0.5 / 2 pixels left of the centre, fx the Kinect V2
    # colour focal length (1081.37 px at 1920 wide) halved for 960, same row.
    left = project_joints(np.array([[0.5, 0.0, 2.0]]), 960, 540)[0]
    np.testing.assert_allclose(left - centre, [-1081.37 / 2 * 0.5 / 2.0, 0.0], atol=1e-9)


def test_annotation_draws_on_a_copy():
    frame = np.zeros((540, 960, 3), np.uint8)
    probabilities = np.full(9, 0.01)
    probabilities[2] = 0.92  # block 3: top row, right column as the pitcher sees it
    out = annotate_frame(frame, joints=REST_POSE, phase='predicted',
                         probabilities=probabilities, label='block 3')
    assert out.shape == frame.shape and frame.max() == 0
    head = np.round(project_joints(REST_POSE, 960, 540)[JOINT_INDEX['SpineMid']]).astype(int)
    assert out[head[1], head[0]].any(), 'skeleton drawn at the projected joint'
    # The grid sits top right: cell side = 540 // 10, three cells wide.
    cell = 54
    x0, y0 = 960 - 3 * cell - cell // 4, cell // 4

    def cell_red(row, col):
        patch = out[y0 + row * cell + 5:y0 + (row + 1) * cell - 5,
                    x0 + col * cell + 5:x0 + (col + 1) * cell - 5, 0]
        return float(np.median(patch))

    assert cell_red(0, 2) > cell_red(2, 0) + 100


def test_recording_phase_and_no_prediction_yet():
    frame = np.full((240, 426, 3), 128, np.uint8)
    out = annotate_frame(frame, joints=None, phase='recording', probabilities=None,
                         window_fill=0.5)
    assert out.shape == frame.shape and not np.array_equal(out, frame)

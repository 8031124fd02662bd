"""The pose-precision bench's jitter moves every joint's projection by the drawn pixels."""

import importlib
from pathlib import Path
import sys

import torch

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / 'bench'):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))  # `training` and the bench run from the repo root

bench = importlib.import_module('pose_precision')  # bench/ is not a package


def test_jitter_moves_each_projection_by_the_drawn_pixels_and_keeps_depth_and_nan():
    torch.manual_seed(0)
    joints = torch.rand(2, 40, 25, 3) + torch.tensor([0.0, 0.0, 2.5])
    joints[0, 3, 7] = float('nan')
    moved = bench.jitter(2.0, torch.Generator().manual_seed(5))(joints)
    draws = torch.randn(joints.shape[:-1] + (2,), generator=torch.Generator().manual_seed(5))
    shift = (moved[..., :2] / moved[..., 2:3] - joints[..., :2] / joints[..., 2:3])
    pixels = shift * bench.FOCAL_112
    ok = ~torch.isnan(joints).any(-1)
    torch.testing.assert_close(pixels[ok], 2.0 * draws[ok], atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(moved[..., 2], joints[..., 2], equal_nan=True)
    assert torch.isnan(moved[0, 3, 7]).all()
    assert bench.jitter(0.0, torch.Generator())(joints) is joints


def test_focal_length_is_the_kinect_colour_camera_at_the_fast_input():
    # 1081.37 px at 1080 rows; the crop is 2/3 of the height (720 px) shown at 112 px.
    assert abs(bench.FOCAL_112 - 168.213) < 1e-3


def test_row_and_column_accuracy_by_hand():
    probs = torch.eye(9)[[0, 4, 8, 1]].numpy()  # predicted blocks 1, 5, 9, 2
    labels = torch.tensor([0, 3, 8, 7]).numpy()  # true blocks 1, 4, 9, 8
    assert bench.row_col(probs, labels) == (0.5, 0.75, 0.75)

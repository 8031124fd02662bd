"""
Draw the predictor's view on a camera frame: skeleton, detector phase, target grid.

The result is what the node publishes on ``/pitch/annotated_image`` for rqt_image_view
or rviz. Joints are projected with a pinhole model of the Kinect v2 colour camera
(intrinsics at 1920x1080, scaled to the image width); Kinect camera space has x to the
sensor's left, so a larger x lands further left in the image.
"""

from typing import Optional

import cv2
import numpy as np
from pitch_predictor.kinect import block_to_row_col, BONES, NUM_BLOCKS

# Kinect v2 colour camera at 1920x1080 (typical factory values).
KINECT_V2_FX = 1081.37
KINECT_V2_CX = 959.5
KINECT_V2_CY = 539.5
KINECT_V2_WIDTH = 1920

PHASE_COLOURS = {  # RGB
    'waiting_for_rest': (160, 160, 160),
    'armed': (255, 200, 0),
    'in_action': (255, 140, 0),
    'recording': (255, 60, 60),
    'predicted': (60, 220, 60),
}
PHASE_TEXT = {
    'waiting_for_rest': 'waiting for rest',
    'armed': 'armed',
    'in_action': 'in action',
    'recording': 'recording window',
    'predicted': 'predicted',
}


def project_joints(joints: np.ndarray, width: int, height: int) -> np.ndarray:
    """Project camera-space joints (25, 3) to pixel (u, v) (25, 2) for a WxH colour image."""
    scale = width / KINECT_V2_WIDTH
    fx = KINECT_V2_FX * scale
    cx = KINECT_V2_CX * scale + (width - KINECT_V2_WIDTH * scale) / 2
    cy = height / 2.0 - 0.5 if abs(height - 1080 * scale) > 1 else KINECT_V2_CY * scale
    z = np.maximum(joints[:, 2], 1e-3)
    u = cx - fx * joints[:, 0] / z
    v = cy - fx * joints[:, 1] / z
    return np.stack([u, v], axis=1)


def _draw_skeleton(canvas: np.ndarray, joints: np.ndarray) -> None:
    height, width = canvas.shape[:2]
    points = project_joints(joints, width, height)
    if not np.isfinite(points).all():
        return
    pixels = np.round(points).astype(int)
    thickness = max(1, width // 400)
    for a, b in BONES:
        cv2.line(canvas, tuple(pixels[a]), tuple(pixels[b]), (0, 255, 255), thickness,
                 cv2.LINE_AA)
    for p in pixels:
        cv2.circle(canvas, tuple(p), thickness + 2, (255, 0, 255), -1, cv2.LINE_AA)


def _draw_grid(canvas: np.ndarray, probabilities: Optional[np.ndarray],
               label: str) -> None:
    """Draw the 3x3 target grid (as the pitcher sees it) in the top-right corner."""
    height, width = canvas.shape[:2]
    cell = max(16, min(width, height) // 10)
    x0, y0 = width - 3 * cell - cell // 4, cell // 4
    best = int(np.argmax(probabilities)) + 1 if probabilities is not None else None
    font_scale = cell / 60.0
    for block in range(1, NUM_BLOCKS + 1):
        row, col = block_to_row_col(block)
        top_left = (x0 + col * cell, y0 + row * cell)
        bottom_right = (top_left[0] + cell - 1, top_left[1] + cell - 1)
        p = 0.0 if probabilities is None else float(probabilities[block - 1])
        region = canvas[top_left[1]:bottom_right[1] + 1, top_left[0]:bottom_right[0] + 1]
        shade = np.array([40, 40, 40], dtype=np.float32) * (1 - p) + \
            np.array([255, 60, 60], dtype=np.float32) * p
        region[:] = (0.35 * region + 0.65 * shade).astype(np.uint8)
        border = (255, 255, 255) if block == best else (120, 120, 120)
        cv2.rectangle(canvas, top_left, bottom_right, border, 2 if block == best else 1)
        cv2.putText(canvas, f'{block}:{p:.2f}', (top_left[0] + 3, top_left[1] + cell // 2),
                    cv2.FONT_HERSHEY_SIMPLEX, font_scale * 0.8, (255, 255, 255), 1,
                    cv2.LINE_AA)
    cv2.putText(canvas, label, (x0, y0 + 3 * cell + int(cell * 0.4)),
                cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)


def annotate_frame(rgb: np.ndarray, *, joints: Optional[np.ndarray], phase: str,
                   probabilities: Optional[np.ndarray], label: str = '',
                   window_fill: float = 0.0) -> np.ndarray:
    """
    Return a copy of ``rgb`` with skeleton, phase banner and shaded target grid.

    ``probabilities``: (9,) of the latest prediction or early estimate, None before the
    first; ``label`` describes it (e.g. 'final' or 'early 50%'); ``window_fill`` draws a
    progress bar while the window is recording.
    """
    canvas = np.ascontiguousarray(rgb).copy()
    height, width = canvas.shape[:2]
    if joints is not None:
        _draw_skeleton(canvas, joints)
    colour = PHASE_COLOURS.get(phase, (255, 255, 255))
    bar_height = max(18, height // 20)
    cv2.rectangle(canvas, (0, 0), (width // 3, bar_height), colour, -1)
    cv2.putText(canvas, PHASE_TEXT.get(phase, phase), (6, int(bar_height * 0.75)),
                cv2.FONT_HERSHEY_SIMPLEX, bar_height / 32.0, (0, 0, 0), 2, cv2.LINE_AA)
    if phase == 'recording':
        filled = int(round(width // 3 * max(0.0, min(1.0, window_fill))))
        cv2.rectangle(canvas, (0, bar_height), (filled, bar_height + 6), colour, -1)
    _draw_grid(canvas, probabilities, label)
    return canvas

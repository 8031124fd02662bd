"""
Kinect V2 body joints and the 3x3 target grid: constants shared by every layer.

Joint order is the Kinect SDK's ``JointType`` enumeration. Camera space: metres,
x to the sensor's left, y up, z away from the sensor.

Target grid: blocks are numbered 1..9 row by row as the *pitcher* sees the grid,
starting top-left::

    1 2 3      (top row)
    4 5 6
    7 8 9      (bottom row)

Class index = block - 1.
"""

from typing import Tuple

JOINT_NAMES = (
    'SpineBase', 'SpineMid', 'Neck', 'Head',
    'ShoulderLeft', 'ElbowLeft', 'WristLeft', 'HandLeft',
    'ShoulderRight', 'ElbowRight', 'WristRight', 'HandRight',
    'HipLeft', 'KneeLeft', 'AnkleLeft', 'FootLeft',
    'HipRight', 'KneeRight', 'AnkleRight', 'FootRight',
    'SpineShoulder', 'HandTipLeft', 'ThumbLeft', 'HandTipRight', 'ThumbRight',
)
NUM_JOINTS = len(JOINT_NAMES)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

# Pairs of joints joined by a bone, for drawing skeletons.
BONES = (
    (3, 2), (2, 20), (20, 1), (1, 0),
    (20, 4), (4, 5), (5, 6), (6, 7), (7, 21), (6, 22),
    (20, 8), (8, 9), (9, 10), (10, 11), (11, 23), (10, 24),
    (0, 12), (12, 13), (13, 14), (14, 15),
    (0, 16), (16, 17), (17, 18), (18, 19),
)

NUM_BLOCKS = 9
GRID_ROWS = 3
GRID_COLS = 3
CLASS_NAMES = tuple(f'block{b}' for b in range(1, NUM_BLOCKS + 1))

FPS = 30.0
FRAMES_PER_TRIAL = 90
WINDOW = 40  # frames in the action window that starts at the start frame


def block_to_row_col(block: int) -> Tuple[int, int]:
    """Map block 1..9 to (row, col), row 0 = top, col 0 = pitcher's left."""
    if not 1 <= int(block) <= NUM_BLOCKS:
        raise ValueError(f'block must be in 1..{NUM_BLOCKS}, got {block}')
    return (int(block) - 1) // GRID_COLS, (int(block) - 1) % GRID_COLS


def row_col_to_block(row: int, col: int) -> int:
    """Inverse of :func:`block_to_row_col`."""
    if not (0 <= row < GRID_ROWS and 0 <= col < GRID_COLS):
        raise ValueError(f'(row, col) out of the 3x3 grid: ({row}, {col})')
    return row * GRID_COLS + col + 1

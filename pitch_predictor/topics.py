"""
The node's ROS interface names, the prediction header's marker and the camera's rate.

One place for what the node (``runtime/``), the recordings (``data/bag.py``), the
offline evaluator, the benchmarks and the tests must agree on; at the package's top
level, beside ``kinect.py``, so the offline data layer does not import the node's
runtime. Topic names are relative (a namespace or a remap moves them); prepend '/'
(:func:`global_name`) for the global name a bag stores. Nothing here imports ROS or
torch.
"""

from pitch_predictor.kinect import FPS

# Inputs.
IMAGE_TOPIC = 'kinect2/qhd/image_color'
COMPRESSED_SUFFIX = '/compressed'  # image_transport's compressed sub-topic
COMPRESSED_IMAGE_TOPIC = IMAGE_TOPIC + COMPRESSED_SUFFIX
SKELETON_TOPIC = 'body_tracking/skeleton'

# Outputs.
PREDICTED_BLOCK_TOPIC = 'pitch/predicted_block'
BLOCK_PROBABILITIES_TOPIC = 'pitch/block_probabilities'
PREDICTION_HEADER_TOPIC = 'pitch/prediction_header'
EARLY_ESTIMATE_TOPIC = 'pitch/early_estimate'
ANNOTATED_IMAGE_TOPIC = 'pitch/annotated_image'
DIAGNOSTICS_TOPIC = '/diagnostics'  # absolute: where a robot's monitoring listens

# ``frame_id`` of /pitch/prediction_header: the final prediction, or an early estimate
# with the fraction of the window seen (``early:0.375``).
FINAL_FRAME_ID = 'final'
EARLY_FRAME_ID_PREFIX = 'early:'

# The camera's frame period (the Kinect v2 streams at FPS = 30 Hz).
FRAME_PERIOD_S = 1.0 / FPS
FRAME_PERIOD_NS = int(round(1e9 / FPS))


def early_frame_id(fraction_seen: float) -> str:
    """Return the header ``frame_id`` of an early estimate made on ``fraction_seen``."""
    return f'{EARLY_FRAME_ID_PREFIX}{fraction_seen:.3f}'


def is_final(frame_id: str) -> bool:
    """Tell whether a prediction header's ``frame_id`` marks a final prediction."""
    return frame_id == FINAL_FRAME_ID


def global_name(topic: str) -> str:
    """Return ``topic`` as an absolute name ('/kinect2/qhd/image_color')."""
    return topic if topic.startswith('/') else '/' + topic

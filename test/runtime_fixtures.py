"""
Test material for the runtime and node tests: tiny checkpoints and a hand-made pitch.

``synthetic_trial`` draws a stick figure that stands still, swings its throwing arm
with growing speed, and stands still again: the structure the start detector looks for
(rest, then an image change that grows for several frames and a moving skeleton),
written out plainly here instead of taken from the simulator.
"""

from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np

from pitch_predictor.kinect import BONES, JOINT_INDEX

# Rest pose in Kinect camera space (metres; x to the sensor's left, y up, z away).
REST_POSE = np.array([
    (0.00, -0.20, 2.20), (0.00, 0.10, 2.20), (0.00, 0.45, 2.20), (0.00, 0.62, 2.20),
    (0.20, 0.38, 2.20), (0.25, 0.10, 2.20), (0.27, -0.15, 2.20), (0.28, -0.22, 2.20),
    (-0.20, 0.38, 2.20), (-0.25, 0.10, 2.20), (-0.27, -0.15, 2.20), (-0.28, -0.22, 2.20),
    (0.10, -0.25, 2.20), (0.12, -0.65, 2.20), (0.12, -1.00, 2.20), (0.12, -1.05, 2.10),
    (-0.10, -0.25, 2.20), (-0.12, -0.65, 2.20), (-0.12, -1.00, 2.20), (-0.12, -1.05, 2.10),
    (0.00, 0.38, 2.20), (0.29, -0.30, 2.20), (0.30, -0.20, 2.20), (-0.29, -0.30, 2.20),
    (-0.30, -0.20, 2.20),
], dtype=np.float32)
THROWING_ARM = [JOINT_INDEX[name] for name in (
    'ElbowRight', 'WristRight', 'HandRight', 'HandTipRight', 'ThumbRight')]
UPPER_BODY = [JOINT_INDEX[name] for name in (
    'SpineMid', 'Neck', 'Head', 'SpineShoulder', 'ShoulderLeft', 'ElbowLeft', 'WristLeft',
    'HandLeft', 'HandTipLeft', 'ThumbLeft', 'ShoulderRight')]


def trial_joints(frames: int = 90, rest: int = 30, motion: int = 30,
                 direction: float = 1.0) -> np.ndarray:
    """Joints (frames, 25, 3): still, then an accelerating arm swing, then still."""
    out = np.repeat(REST_POSE[None], frames, axis=0)
    shoulder = REST_POSE[JOINT_INDEX['ShoulderRight']]
    for t in range(frames):
        s = float(np.clip((t - rest) / motion, 0.0, 1.0))
        angle = direction * 2.8 * s * s
        lean = 0.30 * s * s
        c, si = np.cos(angle), np.sin(angle)
        for j in THROWING_ARM:
            dx, dy = REST_POSE[j, 0] - shoulder[0], REST_POSE[j, 1] - shoulder[1]
            out[t, j, 0] = shoulder[0] + c * dx - si * dy - lean
            out[t, j, 1] = shoulder[1] + si * dx + c * dy
        out[t, UPPER_BODY, 0] -= lean
    return out


def project(joints: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pinhole projection (Kinect v2 colour focal length scaled to the image)."""
    focal = 1081.37 * height / 1080.0
    u = width / 2.0 - focal * joints[:, 0] / joints[:, 2]
    v = height / 2.0 - focal * joints[:, 1] / joints[:, 2]
    return np.stack([u, v], axis=1)


def render(joints: np.ndarray, width: int, height: int) -> np.ndarray:
    """Draw one RGB frame: a fixed room-like background and the stick figure."""
    y = np.linspace(20, 70, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 20, width, dtype=np.float32)[None, :, None]
    image = np.broadcast_to(y + x + np.array([0, 10, 20], np.float32),
                            (height, width, 3)).astype(np.uint8).copy()
    cv2.rectangle(image, (width // 10, height // 8), (width // 4, height // 2),
                  (90, 140, 60), -1)
    points = np.round(project(joints, width, height)).astype(int)
    thickness = max(2, height // 14)
    for a, b in BONES:
        cv2.line(image, tuple(points[a]), tuple(points[b]), (250, 235, 200), thickness,
                 cv2.LINE_AA)
    cv2.circle(image, tuple(points[JOINT_INDEX['Head']]), thickness, (255, 220, 180),
               -1, cv2.LINE_AA)
    return image


def synthetic_trial(width: int = 960, height: int = 540, seed: int = 0, frames: int = 90,
                    rest: int = 30, motion: int = 30) -> Tuple[np.ndarray, np.ndarray]:
    """Return (frames uint8 (N, H, W, 3) RGB, joints float32 (N, 25, 3)) of one pitch."""
    direction = 1.0 if seed % 2 == 0 else -1.0
    joints = trial_joints(frames, rest, motion, direction)
    images = np.stack([render(j, width, height) for j in joints])
    return images, joints


# The validated joints-only recipe (skeleton GRU on centred velocities, hidden 128).
SKELETON_RECIPE = {'features': 'centred_velocity', 'hidden': 128}


def make_checkpoint(path: Path, model_name: str = 'convgru2d_alexnet', seed: int = 0,
                    sampling_method: int = 2, meta: Optional[dict] = None,
                    config: Optional[dict] = None) -> Path:
    """
    Save a randomly initialised fast model (input 112) as a checkpoint at ``path``.

    ``meta`` is added to the checkpoint's meta (e.g. a calibration ``temperature``);
    ``config`` overrides the fast config (e.g. ``features`` of a ``skeleton_gru``).
    """
    import torch

    from pitch_predictor.models.checkpoint import save_checkpoint
    from pitch_predictor.models.registry import build_model, fast_config
    from pitch_predictor.models.preprocessing import fast_preprocess

    torch.manual_seed(seed)
    config = {**fast_config(model_name), **(config or {})}
    model = build_model(model_name, **config)
    save_checkpoint(path, model, model_name=model_name, model_config=config,
                    preprocess=fast_preprocess(), sampling_method=sampling_method,
                    meta={'purpose': 'test: random weights', **(meta or {})})
    return Path(path)


def cached_and_offline_decisions(model, backend: str, sampling_method: int = 2):
    """
    Decide one random 40-frame window as the node does and as the offline evaluator does.

    The node's way: ``FrameEncoder`` encodes each 640x360 frame as it arrives (cached),
    ``final_probabilities`` decides from the cache. The evaluator's way: crop the
    window, ``predict_windows``. Returns (node probabilities, offline probabilities,
    the encoder's cached shape per frame, the runner's failure messages).
    """
    import sys

    import torch

    from pitch_predictor.models.preprocessing import crop_frames, fast_preprocess
    from pitch_predictor.models.preprocessing import test_transform
    from pitch_predictor.models.sampling import test_clip_indices
    from pitch_predictor.runtime.frame_encoding import FrameEncoder
    from pitch_predictor.runtime.inference import ClipRunner, final_probabilities
    from pitch_predictor.runtime.messages import Pixels
    from pitch_predictor.start_detector import StartDetectorConfig
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)  # `training` runs from the repo root; it is not installed
    from training.evaluate import predict_windows

    preprocess = fast_preprocess()
    frames = np.random.default_rng(0).integers(0, 256, (40, 360, 640, 3), dtype=np.uint8)
    encoder = FrameEncoder(model, preprocess, torch.device('cpu'), True, backend=backend)
    feats = torch.stack([encoder.encode(Pixels(f), StartDetectorConfig()).features
                         for f in frames])
    failures = []
    runner = ClipRunner(model, 'rgb', backend, lambda key, message: failures.append(message))
    node = final_probabilities(runner, feats, test_clip_indices(sampling_method), None, 1.0)
    windows = test_transform(crop_frames(frames, preprocess), preprocess)[None]
    offline = predict_windows(model, windows, sampling_method)[0].double().numpy()
    return node, offline, encoder.encoded_shape, failures

"""A motion model (issue 13, item 3c) through the node's per-frame encoding and decision."""

from pathlib import Path
import sys

import numpy as np
from pitch_predictor.models.preprocessing import crop_frames, fast_preprocess, test_transform
from pitch_predictor.models.registry import build_model, fast_config
from pitch_predictor.models.sampling import test_clip_indices
from pitch_predictor.runtime.frame_encoding import FrameEncoder
from pitch_predictor.runtime.inference import ClipRunner, final_probabilities
from pitch_predictor.runtime.messages import Pixels
from pitch_predictor.start_detector import StartDetectorConfig
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training.evaluate import predict_windows  # noqa: E402


@pytest.mark.parametrize('backend', ['eager', 'onnxruntime'])
def test_cached_frames_give_the_evaluators_decision(backend):
    torch.manual_seed(0)
    config = fast_config('convgru2d_alexnet')
    config.update(motion=True, fusion='mean_flat')
    model = build_model('convgru2d_alexnet', **config).eval()
    preprocess = fast_preprocess()
    frames = np.random.default_rng(0).integers(0, 256, (40, 360, 640, 3), dtype=np.uint8)
    encoder = FrameEncoder(model, preprocess, torch.device('cpu'), True, backend=backend)
    # The node caches conv1's two linear maps per frame (64 x 27 x 27 at the fast size).
    assert encoder.encoded_shape == (64, 27, 27)
    feats = torch.stack([encoder.encode(Pixels(f), StartDetectorConfig()).features
                         for f in frames])
    failures = []
    runner = ClipRunner(model, 'rgb', backend, lambda key, message: failures.append(message))
    node = final_probabilities(runner, feats, test_clip_indices(2), None, 1.0)
    windows = test_transform(crop_frames(frames, preprocess), preprocess)[None]
    offline = predict_windows(model, windows, 2)[0].double().numpy()
    assert not failures
    assert np.abs(node - offline).max() < 1e-5

"""A motion model (issue 13, item 3c) through the node's per-frame encoding and decision."""

import numpy as np
from pitch_predictor.models.registry import build_model, fast_config
import pytest
from runtime_fixtures import cached_and_offline_decisions
import torch


@pytest.mark.parametrize('backend', ['eager', 'onnxruntime'])
def test_cached_frames_give_the_evaluators_decision(backend):
    torch.manual_seed(0)
    config = fast_config('convgru2d_alexnet')
    config.update(motion=True, fusion='mean_flat')
    model = build_model('convgru2d_alexnet', **config).eval()
    node, offline, shape, failures = cached_and_offline_decisions(model, backend)
    # The node caches conv1's two linear maps per frame (64 x 27 x 27 at the fast size).
    assert shape == (64, 27, 27)
    assert not failures
    assert np.abs(node - offline).max() < 1e-5

"""training.calibrate: refit the decision temperature on other trials, blocks unchanged."""

from pathlib import Path
import sys

import numpy as np
from pitch_predictor.models.checkpoint import load_checkpoint, save_checkpoint
from pitch_predictor.models.registry import build_model, fast_config
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training.calibrate import calibrate  # noqa: E402
from training.evaluate import evaluate_checkpoint  # noqa: E402


def test_recalibration_fixes_an_overconfident_model_and_keeps_its_blocks(tiny_cache, tmp_path):
    torch.manual_seed(0)
    config = {**fast_config('skeleton_gru'), 'features': 'centred_velocity'}
    model = build_model('skeleton_gru', **config)
    # T = 0.02 multiplies the logits by 50: a confidently random model.
    source = tmp_path / 'model.pt'
    save_checkpoint(source, model, model_name='skeleton_gru', model_config=model.config,
                    preprocess=load_checkpoint_preprocess(tiny_cache), sampling_method=2,
                    meta={'temperature': 0.02, 'seed': 0, 'ece': 0.5})
    out = tmp_path / 'calibrated.pt'
    report = calibrate(source, tiny_cache, out)
    assert report['temperature_before'] == 0.02 and report['trials'] == 36
    # Only the direction is known: the model is random, so the decision NLL keeps falling
    # towards log 9 (uniform) as T grows and the fitted T sits on a flat minimum.
    assert report['temperature'] > 0.02 and report['nll_after'] < report['nll_before']
    assert load_checkpoint(out).meta['temperature'] == report['temperature']
    meta = load_checkpoint(out).meta
    assert meta['seed'] == 0  # the rest of the meta is kept
    # The training run's test ECE was measured at the old temperature: moved, not kept.
    assert 'ece' not in meta and meta['calibration']['test_ece_before'] == 0.5
    before = evaluate_checkpoint(str(source), str(tiny_cache))
    after = evaluate_checkpoint(str(out), str(tiny_cache))
    # Same argmax (accuracy), a lower decision NLL with the new temperature.
    assert before['actual']['accuracy'] == after['actual']['accuracy']
    assert np.isclose(after['actual']['nll'], report['nll_after'], atol=1e-4)


def load_checkpoint_preprocess(cache_dir):
    """Return the cache's preprocessing (a joints model ignores it, the file records it)."""
    from pitch_predictor.data.cache import TrialCache
    return TrialCache(cache_dir).preprocess

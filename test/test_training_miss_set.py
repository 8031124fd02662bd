"""Miss-set evaluation: accuracy against the block hit and the block aimed at, with counts."""

import json
from pathlib import Path
import shutil
import sys

import numpy as np
from pitch_predictor.data.cache import TrialCache
from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training import evaluate, train  # noqa: E402

JOINTS = ['model=skeleton_gru', 'model_preset=fast', 'sampling=2', 'batch_size=6',
          'lr=3e-3', 'num_workers=0', 'threads=1', 'seed=2', 'eval_train=false']


@pytest.fixture(scope='module')
def miss_cache(tiny_cache, tmp_path_factory) -> Path:
    """
    Return a copy of the tiny cache turned into a miss set.

    Every third trial's ball went one block to the right of the one aimed at (wrapping),
    the others hit: labels = actual block - 1, intended.npy = block aimed at.
    """
    out = tmp_path_factory.mktemp('miss') / 'cache'
    shutil.copytree(tiny_cache, out)
    aimed = np.load(out / 'labels.npy') + 1
    actual = aimed.copy()
    missed = np.arange(len(aimed)) % 3 == 0
    actual[missed] = aimed[missed] % 9 + 1
    (out / 'labels.npy').unlink()
    np.save(out / 'labels.npy', (actual - 1).astype(np.int64))
    if (out / 'intended.npy').exists():
        (out / 'intended.npy').unlink()
    np.save(out / 'intended.npy', aimed.astype(np.int64))
    return out


@pytest.fixture(scope='module')
def joints_run(tiny_cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('joints_run')
    torch.set_num_threads(1)
    train.main(['--data', str(tiny_cache), '--out', str(out), *JOINTS, 'epochs=2'])
    return out


def predicted_blocks(ckpt, cache: TrialCache) -> np.ndarray:
    """Return the checkpoint's block (1..9) for every trial of the cache, computed here."""
    probs = evaluate.predict_trials(build_model_from_checkpoint(ckpt), cache,
                                    np.arange(len(cache)), 2, ckpt.preprocess,
                                    torch.device('cpu'),
                                    temperature=ckpt.meta['temperature'])
    return probs.argmax(1) + 1


def test_evaluate_cli_reports_actual_and_intended(miss_cache, joints_run, tmp_path, capsys):
    report_path = tmp_path / 'miss.json'
    evaluate.main(['--model', str(joints_run / 'model.pt'), '--data', str(miss_cache),
                   '--out', str(report_path)])
    assert 'against the intended block' in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    # Recomputed independently from the model's probabilities and the cache's arrays.
    cache = TrialCache(miss_cache)
    ckpt = load_checkpoint(joints_run / 'model.pt')
    preds = predicted_blocks(ckpt, cache)
    actual = np.asarray(cache.labels) + 1
    aimed = np.load(miss_cache / 'intended.npy')
    missed = actual != aimed
    assert report['num_trials'] == 36
    assert report['num_misses'] == 12 and report['num_hits'] == 24
    assert report['actual']['accuracy'] == pytest.approx(float((preds == actual).mean()))
    assert report['intended']['accuracy'] == pytest.approx(float((preds == aimed).mean()))
    assert report['misses']['correct_actual'] == int((preds[missed] == actual[missed]).sum())
    assert report['misses']['correct_intended'] == int((preds[missed] == aimed[missed]).sum())
    assert report['temperature'] == ckpt.meta['temperature']


def test_train_evaluates_a_miss_set_at_the_end(tiny_cache, miss_cache, tmp_path):
    result = train.main(['--data', str(tiny_cache), '--out', str(tmp_path / 'run'), *JOINTS,
                         'epochs=1', f'miss_data={miss_cache}'])
    miss = json.loads((tmp_path / 'run' / 'metrics.json').read_text())['miss']
    assert miss == json.loads(json.dumps(result['miss']))
    assert miss['num_trials'] == 36 and miss['num_misses'] == 12
    assert miss['misses']['num_trials'] == 12
    # The run's own model, evaluated independently on the miss cache.
    cache = TrialCache(miss_cache)
    ckpt = load_checkpoint(tmp_path / 'run' / 'model.pt')
    preds = predicted_blocks(ckpt, cache)
    actual = np.asarray(cache.labels) + 1
    assert miss['actual']['accuracy'] == pytest.approx(float((preds == actual).mean()))
    assert miss['intended']['accuracy'] == pytest.approx(
        float((preds == np.asarray(cache.intended)).mean()))

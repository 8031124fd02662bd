"""Train / validation / test splits and early stopping on the best validation epoch."""

import json
from pathlib import Path
import sys
from types import SimpleNamespace

import numpy as np
from pitch_predictor.data.cache import paper_split, TrialCache
from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training import train  # noqa: E402
from training.config import ConfigError  # noqa: E402
from training.evaluate import evaluate_checkpoint, predict_trials  # noqa: E402
from training.splits import make_split, SplitError  # noqa: E402


def fake_cache(participants: int = 6, blocks: int = 9, trials: int = 10) -> SimpleNamespace:
    """Return the index arrays of a full set, rows shuffled (the splits must not care)."""
    p, b, t = np.meshgrid(np.arange(participants), np.arange(blocks), np.arange(trials),
                          indexing='ij')
    order = np.random.default_rng(5).permutation(p.size)
    return SimpleNamespace(participants=p.ravel()[order], labels=b.ravel()[order],
                           trial_index=t.ravel()[order],
                           participant_names=[f'P{k}' for k in range(participants)])


def groups(cache, idx) -> dict:
    keys = zip(cache.participants[idx].tolist(), cache.labels[idx].tolist())
    counts: dict = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_paper_split_is_378_54_108_disjoint_and_keeps_the_old_test():
    cache = fake_cache()
    split = make_split(cache, 'paper')
    assert split.sizes() == {'train': 378, 'validation': 54, 'test': 108}
    everything = np.concatenate([split.train, split.validation, split.test])
    assert sorted(everything.tolist()) == list(range(540))  # disjoint and complete
    assert set(groups(cache, split.validation).values()) == {1}  # 1 per participant, block
    assert len(groups(cache, split.validation)) == 54
    assert set(groups(cache, split.train).values()) == {7}
    np.testing.assert_array_equal(split.test, paper_split(cache)[1])
    # Deterministic; another val_seed draws other validation trials, the same test.
    again = make_split(cache, 'paper')
    np.testing.assert_array_equal(again.validation, split.validation)
    other = make_split(cache, 'paper', val_seed=1)
    assert not np.array_equal(other.validation, split.validation)
    np.testing.assert_array_equal(other.test, split.test)


def test_no_validation_is_the_old_eight_two_split():
    cache = fake_cache()
    split = make_split(cache, 'paper', val_per_group=0)
    assert split.sizes() == {'train': 432, 'validation': 0, 'test': 108}
    np.testing.assert_array_equal(split.train, paper_split(cache)[0])


def test_lopo_split_carves_validation_from_the_other_participants():
    cache = fake_cache()
    split = make_split(cache, 'lopo:P2')
    assert split.sizes() == {'train': 5 * 9 * 9, 'validation': 5 * 9, 'test': 90}
    assert set(cache.participants[split.test].tolist()) == {2}
    assert 2 not in set(cache.participants[split.validation].tolist())
    assert 2 not in set(cache.participants[split.train].tolist())
    assert set(groups(cache, split.validation).values()) == {1}
    assert len(set(split.train) | set(split.validation) | set(split.test)) == 540
    with pytest.raises(SplitError, match='no participant'):
        make_split(cache, 'lopo:P9')
    with pytest.raises(SplitError, match='paper'):
        make_split(cache, 'random')


def test_lopo_split_with_validation_people_holds_out_whole_participants():
    cache = fake_cache()
    split = make_split(cache, 'lopo:P2/P3', val_per_group=1)  # val_per_group is not used
    assert split.sizes() == {'train': 4 * 90, 'validation': 90, 'test': 90}
    assert set(cache.participants[split.validation].tolist()) == {3}
    assert set(cache.participants[split.train].tolist()) == {0, 1, 4, 5}
    np.testing.assert_array_equal(split.test, make_split(cache, 'lopo:P2').test)
    two = make_split(cache, 'lopo:P2/P0,P5')
    assert set(cache.participants[two.validation].tolist()) == {0, 5}
    assert two.sizes() == {'train': 3 * 90, 'validation': 180, 'test': 90}
    for bad in ('lopo:P2/P2', 'lopo:P2/P9', 'lopo:P2/P3,P3', 'lopo:P2/'):
        with pytest.raises(SplitError, match='distinct training participants'):
            make_split(cache, bad)


def test_tiny_cache_split_sizes(tiny_cache):
    # 1 participant x 9 blocks x 4 trials: 2 test, 1 validation, 1 train per block.
    split = make_split(TrialCache(tiny_cache), 'paper')
    assert split.sizes() == {'train': 9, 'validation': 9, 'test': 18}


JOINTS = ['model=skeleton_gru', 'model_preset=fast', 'preprocess=fast', 'sampling=2',
          'batch_size=3', 'lr=3e-3', 'optimizer=adamw', 'num_workers=0', 'threads=1',
          'seed=1', 'eval_train=false']


def test_early_stopping_keeps_the_best_validation_weights(tiny_cache, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / 'run'
    # A learning rate this high makes validation accuracy go up and down.
    result = train.main(['--data', str(tiny_cache), '--out', str(out), *JOINTS,
                         'epochs=12', 'patience=3', 'lr=3e-2'])
    history = result['history']
    scored = [(h['val_acc'], -h['val_loss'], -h['epoch']) for h in history]
    best = history[scored.index(max(scored))]
    assert result['chosen_epoch'] == best['epoch']
    # Stopped by patience exactly 3 epochs after the best one, or ran every epoch.
    if result['stop_reason'] == 'patience':
        assert len(history) == best['epoch'] + 3 < 12
    else:
        assert len(history) == 12 and history[-1]['epoch'] - best['epoch'] < 3
    # model.pt, evaluated afresh on the validation trials, scores what the best epoch did.
    cache = TrialCache(tiny_cache)
    split = make_split(cache, 'paper')
    ckpt = load_checkpoint(out / 'model.pt')
    model = build_model_from_checkpoint(ckpt)
    probs = predict_trials(model, cache, split.validation, 2, ckpt.preprocess,
                           torch.device('cpu'))
    labels = np.asarray(cache.labels)[split.validation]
    assert float((probs.argmax(1) == labels).mean()) == pytest.approx(best['val_acc'])
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['num_validation'] == 9 and metrics['num_test'] == 18
    assert metrics['validation']['accuracy'] == pytest.approx(best['val_acc'])
    assert metrics['validation']['num_trials'] == 9 and metrics['test']['num_trials'] == 18
    assert 'test_acc' not in history[0]  # the test split is not looked at while training
    # Temperature scaling: fitted on validation, stored in model.pt, ECE before and after.
    temperature = ckpt.meta['temperature']
    assert metrics['temperature'] == temperature == metrics['test']['temperature'] > 0
    validation = metrics['validation']
    assert validation['nll'] <= validation['uncalibrated']['nll'] + 1e-9
    assert {'accuracy', 'ece', 'nll'} <= set(metrics['test']['uncalibrated'])
    # The evaluator applies the checkpoint's temperature: it reproduces the test figures.
    report = evaluate_checkpoint(str(out / 'model.pt'), str(tiny_cache), split='paper')
    assert report['temperature'] == temperature and report['num_trials'] == 18
    assert report['actual']['nll'] == pytest.approx(metrics['test']['nll'], abs=1e-5)
    assert report['actual']['accuracy'] == metrics['test']['accuracy']
    # Rerunning the finished command trains nothing more (early stop is remembered).
    again = train.main(['--data', str(tiny_cache), '--out', str(out), *JOINTS,
                        'epochs=12', 'patience=3', 'lr=3e-2'])
    assert len(again['history']) == len(history)


def test_split_that_leaves_no_training_trials_is_refused(tiny_cache, tmp_path):
    with pytest.raises(ConfigError, match='non-empty|no participant'):
        train.main(['--data', str(tiny_cache), '--out', str(tmp_path / 'x'), *JOINTS,
                    'epochs=1', 'split=lopo:nobody'])

"""Temperature scaling on hand-made clip logits, checked with the softmax written out."""

import math
from pathlib import Path
import sys

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training.evaluate import decide, summarize_logits  # noqa: E402
from training.metrics import (  # noqa: E402
    actual_and_intended, expected_calibration_error, fit_temperature)


def plain_decision(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Mean over clips of softmax(logits / T), in float64 numpy."""
    z = logits.astype(np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).mean(axis=0)


def plain_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probs = plain_decision(logits, temperature)
    return float(-np.log(probs[np.arange(len(labels)), labels]).mean())


def plain_ece(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE written out: bins (k/10, (k+1)/10], |accuracy - confidence| weighted by size."""
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    total = 0.0
    for k in range(bins):
        inside = (confidence > k / bins) & (confidence <= (k + 1) / bins)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def made_up_logits(rng: np.random.Generator, n: int, right: float, margin: float):
    """Two clips per trial: the top logit ``margin`` above the rest; right ``right`` often."""
    labels = rng.integers(0, 9, n)
    top = np.where(rng.random(n) < right, labels, (labels + rng.integers(1, 9, n)) % 9)
    logits = rng.normal(0.0, 0.3, (2, n, 9))
    logits[:, np.arange(n), top] += margin
    return logits.astype(np.float32), labels


def test_overconfident_logits_get_a_temperature_above_one_and_a_lower_nll():
    # 60 % right with a margin of 8 nats: confidence ~0.99, accuracy 0.6.
    logits, labels = made_up_logits(np.random.default_rng(0), 400, 0.6, 8.0)
    temperature = fit_temperature(logits, labels)
    # The fitted T is the minimum over a fine independent grid: the same T up to the
    # grid's step in log T (0.3 %), and no grid point has a lower NLL.
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 2001))
    losses = [plain_nll(logits, labels, t) for t in grid]
    step = np.log(grid[1] / grid[0])
    assert abs(np.log(temperature / grid[int(np.argmin(losses))])) <= step
    assert plain_nll(logits, labels, temperature) <= min(losses) + 1e-5
    assert temperature > 1.0  # overconfident: softened
    before = plain_decision(logits, 1.0)
    after = plain_decision(logits, temperature)
    # ECE by hand: at T = 1 every confidence is above 0.9 (one bin), so the ECE is
    # |accuracy - mean confidence| over all trials; after scaling, the sum over the bins.
    accuracy = float((before.argmax(1) == labels).mean())
    assert before.max(1).min() > 0.9
    assert expected_calibration_error(before, labels) == pytest.approx(
        abs(accuracy - before.max(1).mean()), abs=1e-12)
    assert expected_calibration_error(after, labels) == pytest.approx(
        plain_ece(after, labels), abs=1e-12)
    assert plain_ece(after, labels) < expected_calibration_error(before, labels) / 3


def test_underconfident_logits_get_a_temperature_below_one():
    logits, labels = made_up_logits(np.random.default_rng(1), 400, 0.95, 0.8)
    temperature = fit_temperature(logits, labels)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 2001))
    losses = [plain_nll(logits, labels, t) for t in grid]
    assert abs(np.log(temperature / grid[int(np.argmin(losses))])) <= np.log(grid[1] / grid[0])
    assert temperature < 1.0  # underconfident: sharpened
    assert plain_nll(logits, labels, temperature) < plain_nll(logits, labels, 1.0)


def test_decision_and_summary_use_the_temperature():
    logits, labels = made_up_logits(np.random.default_rng(2), 50, 0.7, 5.0)
    np.testing.assert_allclose(decide(logits, 2.5), plain_decision(logits, 2.5), atol=1e-6)
    summary = summarize_logits(logits, labels, 2.5)
    assert summary['temperature'] == 2.5
    assert summary['nll'] == pytest.approx(plain_nll(logits, labels, 2.5), abs=1e-5)
    assert summary['uncalibrated']['nll'] == pytest.approx(plain_nll(logits, labels, 1.0),
                                                           abs=1e-5)
    assert fit_temperature(logits[:, :0], labels[:0]) == 1.0


def test_actual_and_intended_by_hand():
    # 4 trials: 2 hits (intended == actual), 2 misses; predictions: 0, 1, 2, 5.
    probs = np.eye(9)[[0, 1, 2, 5]]
    labels = np.array([0, 1, 3, 4])   # actual block - 1
    intended = np.array([1, 2, 3, 6])  # blocks aimed at: trials 2 and 3 missed
    report = actual_and_intended(probs, labels, intended, [f'block{b}' for b in range(1, 10)])
    assert report['actual']['accuracy'] == 0.5
    assert report['intended']['accuracy'] == 1.0
    assert report['num_hits'] == 2 and report['num_misses'] == 2
    assert report['misses'] == {'num_trials': 2, 'accuracy_actual': 0.0,
                                'accuracy_intended': 1.0, 'correct_actual': 0,
                                'correct_intended': 2}
    assert actual_and_intended(probs, labels, None, ['b'] * 9)['intended'] is None


def test_calibrated_ece_band_by_hand():
    from training.metrics import calibrated_ece_band
    # Certain and right every time: a calibrated model's ECE is exactly 0.
    assert calibrated_ece_band(np.eye(9)[[0, 3, 8]]) == {'mean': 0.0, 'q95': 0.0}
    # One trial at 50 %: right or wrong, |correct - 0.5| = 0.5 in every draw.
    half = np.zeros((1, 9))
    half[0, :2] = 0.5
    assert calibrated_ece_band(half) == {'mean': 0.5, 'q95': 0.5}
    # 50 trials all at confidence 0.8 (one bin): the ECE is |K / 50 - 0.8| with K the
    # number right, K ~ Binomial(50, 0.8); its exact mean by the binomial sum.
    probs = np.full((50, 9), 0.2 / 8)
    probs[:, 0] = 0.8
    exact = sum(math.comb(50, k) * 0.8 ** k * 0.2 ** (50 - k) * abs(k / 50 - 0.8)
                for k in range(51))
    assert abs(calibrated_ece_band(probs, draws=2000)['mean'] - exact) < 0.003  # MC sd 0.0008
    # 100 times the trials: a tenth of the floor (1 / sqrt(n)).
    large = calibrated_ece_band(np.repeat(probs, 100, axis=0), draws=200)['mean']
    assert 8 < exact / large < 12
    assert calibrated_ece_band(probs, seed=3) == calibrated_ece_band(probs, seed=3)


def test_lopo_pooling_concatenates_the_folds():
    from training.lopo_report import pool_folds
    from training.metrics import expected_calibration_error
    rng = np.random.default_rng(0)
    folds = []
    for name, n in (('P1', 30), ('P2', 20)):
        probs = rng.dirichlet(np.ones(9), size=n)
        folds.append((name, probs, rng.integers(0, 9, size=n)))
    report = pool_folds(folds)
    probs = np.concatenate([f[1] for f in folds])
    labels = np.concatenate([f[2] for f in folds])
    assert report['pooled']['trials'] == 50
    assert report['pooled']['accuracy'] == (probs.argmax(1) == labels).mean()
    assert report['pooled']['ece'] == expected_calibration_error(probs, labels)
    assert [f['participant'] for f in report['folds']] == ['P1', 'P2']
    accs = [(f[1].argmax(1) == f[2]).mean() for f in folds]
    assert report['mean_fold_accuracy'] == np.mean(accs)
    assert report['folds'][1]['ece'] == expected_calibration_error(folds[1][1], folds[1][2])

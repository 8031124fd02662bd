"""Classification metrics for the 9-block task: accuracy, confusion, calibration."""

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from pitch_predictor.kinect import block_to_row_col


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Return counts (num_classes, num_classes): row = true class, column = predicted."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Return the recall of every class (NaN for a class absent from the labels)."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def row_column_accuracy(matrix: np.ndarray) -> Dict[str, float]:
    """
    Return the accuracy of the predicted grid row and column from a 9-block confusion matrix.

    Class c is block c + 1, placed on the grid by ``kinect.block_to_row_col``. A robot that
    only has to move sideways needs the column right.
    """
    matrix = np.asarray(matrix)
    total = matrix.sum()
    if total == 0:
        return {'row': float('nan'), 'column': float('nan')}
    rows, cols = np.array([block_to_row_col(c + 1) for c in range(matrix.shape[0])]).T
    return {'row': float(matrix[rows[:, None] == rows[None, :]].sum() / total),
            'column': float(matrix[cols[:, None] == cols[None, :]].sum() / total)}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, num_bins: int = 10,
                               ) -> float:
    """
    Return the ECE: sum over confidence bins of |B|/N * |accuracy(B) - confidence(B)|.

    Confidence is the top class probability; bins are equal-width on (0, 1], a
    confidence of exactly 0 goes to the first bin.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float('nan')
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    bins = np.clip(np.ceil(confidence * num_bins).astype(int) - 1, 0, num_bins - 1)
    ece = 0.0
    for b in range(num_bins):
        members = bins == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


def calibrated_ece_band(probs: np.ndarray, num_bins: int = 10, draws: int = 1000,
                        seed: int = 0) -> Dict[str, float]:
    """
    Return the ECE a perfectly calibrated model with these probabilities would show.

    Labels are drawn from each row of ``probs`` (so the probabilities are exactly right)
    ``draws`` times; the result is the mean and the 95th percentile of their ECE. On a
    hundred trials this floor is several points: a measured ECE inside the band is
    consistent with calibration at that sample size, one above ``q95`` is not.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return {'mean': float('nan'), 'q95': float('nan')}
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    values = []
    for _ in range(draws):
        u = rng.random((len(probs), 1))
        labels = np.minimum((u > cumulative).sum(axis=1), probs.shape[1] - 1)
        values.append(expected_calibration_error(probs, labels, num_bins))
    return {'mean': float(np.mean(values)), 'q95': float(np.quantile(values, 0.95))}


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    """Return the mean -log p(true class) (probabilities clipped at 1e-12)."""
    picked = np.asarray(probs)[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def summarize(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
              ) -> Dict[str, object]:
    """Return the metrics dict written to ``metrics.json`` for one evaluation."""
    preds = np.asarray(probs).argmax(axis=1)
    matrix = confusion_matrix(labels, preds, len(class_names))
    per_class = per_class_accuracy(matrix)
    grid = row_column_accuracy(matrix)
    return {
        'num_trials': int(len(labels)),
        'accuracy': float((preds == np.asarray(labels)).mean()) if len(labels) else float('nan'),
        'per_block_accuracy': {
            name: (None if np.isnan(acc) else float(acc))
            for name, acc in zip(class_names, per_class)
        },
        'row_accuracy': grid['row'],
        'column_accuracy': grid['column'],
        'ece': expected_calibration_error(probs, labels),
        'nll': negative_log_likelihood(probs, labels),
        'confusion_matrix': matrix.tolist(),
    }


def mean_and_std(values: Sequence[float]) -> Dict[str, float]:
    """Return mean, sample standard deviation (0 for one value) and count."""
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if array.size == 0:
        return {'mean': float('nan'), 'std': float('nan'), 'n': 0}
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {'mean': float(array.mean()), 'std': std, 'n': int(array.size)}


def clip_nll(clip_logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Return the NLL of the decision (mean calibrated softmax over clips ``(K, n, 9)``)."""
    from pitch_predictor.models.decision import mean_clip_probabilities
    import torch
    probs = mean_clip_probabilities(torch.from_numpy(np.asarray(clip_logits, np.float32)),
                                    temperature, clip_dim=0).double().numpy()
    return negative_log_likelihood(probs, labels)


def fit_temperature(clip_logits: np.ndarray, labels: np.ndarray,
                    bounds: Tuple[float, float] = (0.05, 20.0), grid: int = 61,
                    tolerance: float = 1e-4) -> float:
    """
    Return the temperature T minimising the validation NLL of the decision.

    One scalar: the logits ``(K, n, 9)`` of every test clip are divided by T, softmaxed
    and averaged over the clips (``decision.mean_clip_probabilities``, the node's rule),
    so T is fitted to exactly what the robot reads. A search over log T: a grid over
    ``bounds``, then golden-section refinement around the best grid point (the mean over
    clips makes the NLL non-convex in general, the grid guards against a local minimum).
    No trials: 1.0.
    """
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 1.0
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    points = np.linspace(lo, hi, grid)
    losses = [clip_nll(clip_logits, labels, float(np.exp(p))) for p in points]
    best = int(np.argmin(losses))
    a, b = points[max(best - 1, 0)], points[min(best + 1, grid - 1)]
    ratio = (np.sqrt(5.0) - 1.0) / 2.0

    def loss(log_t: float) -> float:
        return clip_nll(clip_logits, labels, float(np.exp(log_t)))

    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    while b - a > tolerance:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(d)
    candidates = [(losses[best], points[best]), (fc, c), (fd, d)]
    return float(np.exp(min(candidates)[1]))


def actual_and_intended(probs: np.ndarray, labels: np.ndarray,
                        intended: Optional[np.ndarray], class_names: Sequence[str],
                        ) -> Dict[str, object]:
    """
    Return the metrics against the actual block and against the block aimed at.

    ``labels``: class of the block the ball hit (block - 1); ``intended``: the block aimed
    at (1..9; None when the cache does not record it). The ``misses`` entry restricts
    both accuracies to the trials whose ball missed the block aimed at: does the network
    see where the ball goes, or where the pitcher aims?
    """
    labels = np.asarray(labels)
    preds = np.asarray(probs).argmax(axis=1)
    out: Dict[str, object] = {'num_trials': int(len(labels)),
                              'actual': summarize(probs, labels, class_names)}
    if intended is None:
        out['intended'] = None
        return out
    aimed = np.asarray(intended, dtype=np.int64) - 1
    missed = aimed != labels

    def accuracy(target: np.ndarray, where: np.ndarray) -> Optional[float]:
        return float((preds[where] == target[where]).mean()) if where.any() else None

    out['intended'] = summarize(probs, aimed, class_names)
    out['num_hits'] = int((~missed).sum())
    out['num_misses'] = int(missed.sum())
    out['misses'] = {'num_trials': int(missed.sum()),
                     'accuracy_actual': accuracy(labels, missed),
                     'accuracy_intended': accuracy(aimed, missed),
                     'correct_actual': int((preds[missed] == labels[missed]).sum()),
                     'correct_intended': int((preds[missed] == aimed[missed]).sum())}
    return out

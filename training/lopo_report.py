"""
Leave-one-participant-out, pooled: accuracy and ECE per fold and over all folds together.

Every trial is predicted once, by the fold that held its pitcher out.

A fold's ECE rests on 90 trials, where even a perfectly calibrated model shows an ECE
of about 0.05-0.07 (``metrics.calibrated_ece_band``); the pooled ECE over the six folds'
540 predictions is the calibration figure, reported beside that band.

    .venv/bin/python -m training.lopo_report --runs runs/lopo_P1 ... runs/lopo_P6 \
        [--model model.pt] [--out report.json]

Each run folder is a finished ``training.train`` run with ``split=lopo:<P>``; its
``--model`` file (``model.pt``, or ``model_recal.pt`` from ``training.calibrate``) is
scored with its own temperature on its held-out participant, on the run's data.
"""

import argparse
import json
from pathlib import Path
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from training.metrics import calibrated_ece_band, expected_calibration_error


def pool_folds(folds: Sequence[Tuple[str, np.ndarray, np.ndarray]]) -> Dict[str, Any]:
    """Return per-fold and pooled accuracy, ECE and calibrated band from (name, probs, labels)."""
    per_fold: List[Dict[str, Any]] = []
    for name, probs, labels in folds:
        per_fold.append({'participant': name, 'trials': int(len(labels)),
                         'accuracy': float((probs.argmax(1) == labels).mean()),
                         'ece': expected_calibration_error(probs, labels),
                         'calibrated_ece_band': calibrated_ece_band(probs)})
    probs = np.concatenate([f[1] for f in folds])
    labels = np.concatenate([f[2] for f in folds])
    accuracies = [f['accuracy'] for f in per_fold]
    return {'folds': per_fold,
            'mean_fold_accuracy': float(np.mean(accuracies)),
            'sd_fold_accuracy': float(np.std(accuracies)),
            'mean_fold_ece': float(np.mean([f['ece'] for f in per_fold])),
            'pooled': {'trials': int(len(labels)),
                       'accuracy': float((probs.argmax(1) == labels).mean()),
                       'ece': expected_calibration_error(probs, labels),
                       'confidence': float(probs.max(1).mean()),
                       'calibrated_ece_band': calibrated_ece_band(probs)}}


def checkpoint_probabilities(path: Path, cache: Any, trials: np.ndarray) -> np.ndarray:
    """Return a checkpoint's probabilities (n, 9) for cached ``trials``, at its temperature."""
    from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
    from pitch_predictor.models.decision import checkpoint_temperature
    from training.evaluate import predict_trials
    ckpt = load_checkpoint(path)
    model = build_model_from_checkpoint(ckpt).eval()
    probs = predict_trials(model, cache, trials, ckpt.sampling_method, ckpt.preprocess,
                           torch.device('cpu'), temperature=checkpoint_temperature(ckpt.meta))
    return probs.astype(np.float64)


def fold_predictions(run: Path, model_file: str) -> Tuple[str, np.ndarray, np.ndarray]:
    """Score one LOPO run's model on its held-out participant."""
    from pitch_predictor.data.cache import TrialCache
    from training.splits import make_split
    metrics_path = run / 'metrics.json'
    if not metrics_path.is_file():
        raise ValueError(f'{run}: no metrics.json (not a finished training run)')
    metrics = json.loads(metrics_path.read_text())
    split = str(metrics.get('split', ''))
    if not split.startswith('lopo:'):
        raise ValueError(f'{run}: split {split!r} is not a leave-one-participant-out fold')
    cache = TrialCache(metrics['data'])
    trials = make_split(cache, split).test
    probs = checkpoint_probabilities(run / model_file, cache, trials)
    name = split.split(':', 1)[1].split('/')[0]
    return name, probs, np.asarray(cache.labels)[trials]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: pool LOPO runs; print a table and optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--runs', nargs='+', required=True, help='LOPO run folders')
    parser.add_argument('--model', default='model.pt', help='checkpoint file in each run')
    parser.add_argument('--out', default=None, help='write the report as JSON here')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        folds = [fold_predictions(Path(run), args.model) for run in args.runs]
    except ValueError as exc:
        parser.error(str(exc))
    names = [f[0] for f in folds]
    if len(set(names)) != len(names):
        parser.error(f'two runs hold out the same participant: {names}')
    report = pool_folds(folds)
    report.update(runs=list(args.runs), model=args.model)
    print('| participant | trials | accuracy % | ECE | calibrated-model ECE (mean, q95) |')
    print('|---|---|---|---|---|')
    for f in report['folds'] + [dict(report['pooled'], participant='pooled')]:
        band = f['calibrated_ece_band']
        print(f"| {f['participant']} | {f['trials']} | {100 * f['accuracy']:.1f} | "
              f"{f['ece']:.3f} | {band['mean']:.3f}, {band['q95']:.3f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())

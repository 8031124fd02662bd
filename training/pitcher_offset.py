"""
A per-pitcher row offset from a few labelled throws: measure it, and fit it for the node.

The default's leave-one-participant-out errors are mostly one row off, in one direction
per person (docs/training.md, "More pitchers"). The correction: a log-probability
offset per grid row (the middle row's fixed at 0), fitted on a new pitcher's labelled
throws by maximum likelihood with an L2 pull to 0 of weight ``--l2`` (on a grid of
0.25, within +-6) and added to the decision of every later throw
(``pitch_predictor.models.decision.apply_row_offset``, the node's
``pitcher_row_offset_top`` and ``pitcher_row_offset_bottom`` parameters).

Measure (``--runs`` or ``--checkpoint`` with ``--data``): for each pitcher, ``--draws``
times, ``--shots`` labelled throws per block are drawn, the offset is fitted on them and
the plain and corrected predictions are scored on the pitcher's other throws.

    .venv/bin/python -m training.pitcher_offset --runs runs/lopo_P1 ... runs/lopo_P6 \
        [--model model_recal.pt] [--shots 1,2] [--l2 0,0.5] [--draws 40] [--out J]
    .venv/bin/python -m training.pitcher_offset \
        --checkpoint pitch_predictor/shipped_model/skeleton_gru_fast.pt \
        --data data/synthetic/cache_fast_newpeople [...]

``--runs``: each LOPO run's model on its held-out pitcher. ``--checkpoint`` and
``--data``: one model on every pitcher of a cache it was not trained on (the seed-1
pitchers: the set ``--l2`` was chosen on).

Fit (``--fit``): the offset of one new person from all of their labelled throws in a
cache (record them in the dataset layout, one or more throws at every block, then
``pitch-sim cache --source <layout> --out <cache>``); prints the node parameters.

    .venv/bin/python -m training.pitcher_offset --fit --data <cache> \
        [--checkpoint <the node's model>] [--participant <name>]
"""

import argparse
import json
from pathlib import Path
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from pitch_predictor.kinect import GRID_ROWS, NUM_BLOCKS
from pitch_predictor.models.decision import apply_row_offset, ROW_OF_CLASS
from training.lopo_report import checkpoint_probabilities, fold_predictions
from training.metrics import expected_calibration_error

MIDDLE_ROW = GRID_ROWS // 2
OFFSET_GRID = np.arange(-6.0, 6.0 + 1e-9, 0.25)
Fold = Tuple[str, np.ndarray, np.ndarray]  # (name, probabilities (N, 9), labels (N,))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Return ``logits`` (..., 9) normalised over the last axis, in log space."""
    return logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)


def fit_row_offset(log_probs: np.ndarray, labels: np.ndarray, l2: float) -> np.ndarray:
    """
    Return the per-row offset (3,) that best explains ``labels`` (N,) from ``log_probs``.

    Maximises the log-likelihood of the offset log-probabilities minus ``l2`` times the
    squared offsets, over :data:`OFFSET_GRID` for the top and bottom rows (the middle
    row's offset is 0: only differences between rows change a prediction).
    """
    others = [r for r in range(GRID_ROWS) if r != MIDDLE_ROW]
    a, b = np.meshgrid(OFFSET_GRID, OFFSET_GRID, indexing='ij')
    offsets = np.zeros((a.size, GRID_ROWS))
    offsets[:, others[0]], offsets[:, others[1]] = a.ravel(), b.ravel()
    shifted = log_softmax(log_probs[None] + offsets[:, None, ROW_OF_CLASS])  # (G, N, 9)
    picked = shifted[:, np.arange(len(labels)), labels].sum(1)
    objective = picked - l2 * (offsets ** 2).sum(1)
    return offsets[int(objective.argmax())]


def draw_shots(labels: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Return indices of ``shots`` random throws at each block (the calibration throws)."""
    picked = []
    for c in range(NUM_BLOCKS):
        pool = np.flatnonzero(labels == c)
        if len(pool) <= shots:
            raise ValueError(f'block {c + 1}: {len(pool)} throws, cannot keep any beyond '
                             f'{shots} calibration throws')
        picked.append(rng.choice(pool, shots, replace=False))
    return np.concatenate(picked)


def score_fold(probs: np.ndarray, labels: np.ndarray, shots: int, l2: float, draws: int,
               rng: np.random.Generator) -> Dict[str, float]:
    """Return the plain and offset-corrected accuracy on the throws after calibration."""
    log_probs = np.log(np.clip(probs, 1e-12, None))
    plain, corrected, moved, ece_plain, ece_corrected = [], [], [], [], []
    for _ in range(draws):
        calibration = draw_shots(labels, shots, rng)
        rest = np.setdiff1d(np.arange(len(labels)), calibration)
        offset = fit_row_offset(log_probs[calibration], labels[calibration], l2)
        plain.append(float((log_probs[rest].argmax(1) == labels[rest]).mean()))
        adapted = apply_row_offset(probs[rest], offset)  # as the node applies it
        corrected.append(float((adapted.argmax(1) == labels[rest]).mean()))
        moved.append(float(np.abs(offset).max()))
        ece_plain.append(expected_calibration_error(probs[rest], labels[rest]))
        ece_corrected.append(expected_calibration_error(adapted, labels[rest]))
    return {'plain': float(np.mean(plain)), 'corrected': float(np.mean(corrected)),
            'corrected_sd_over_draws': float(np.std(corrected)),
            'mean_largest_offset': float(np.mean(moved)),
            'ece_plain': float(np.mean(ece_plain)),
            'ece_corrected': float(np.mean(ece_corrected)),
            'scored_throws': int(len(labels) - NUM_BLOCKS * shots)}


def offset_report(folds: Sequence[Fold], shots: Sequence[int],
                  l2: Sequence[float], draws: int, seed: int = 0) -> List[Dict[str, Any]]:
    """Return one row per (shots, l2): per fold and mean plain vs corrected accuracy."""
    rows = []
    for n in shots:
        for weight in l2:
            rng = np.random.default_rng(seed)
            per_fold = [dict(score_fold(probs, labels, n, weight, draws, rng), run=name)
                        for name, probs, labels in folds]
            rows.append({'shots_per_block': n, 'calibration_throws': NUM_BLOCKS * n,
                         'l2': weight, 'draws': draws, 'folds': per_fold,
                         'plain': float(np.mean([f['plain'] for f in per_fold])),
                         'corrected': float(np.mean([f['corrected'] for f in per_fold])),
                         'ece_plain': float(np.mean([f['ece_plain'] for f in per_fold])),
                         'ece_corrected': float(np.mean([f['ece_corrected']
                                                         for f in per_fold])),
                         'worst_plain': float(min(f['plain'] for f in per_fold)),
                         'worst_corrected': float(min(f['corrected'] for f in per_fold))})
    return rows


def pitcher_predictions(checkpoint: Path, data: Path) -> List[Fold]:
    """Return (pitcher, probabilities, labels) for every pitcher of the cache ``data``."""
    from pitch_predictor.data.cache import TrialCache
    cache = TrialCache(data)
    probs = checkpoint_probabilities(checkpoint, cache, np.arange(len(cache)))
    participants = np.asarray(cache.participants)
    labels = np.asarray(cache.labels)
    return [(name, probs[participants == i], labels[participants == i])
            for i, name in enumerate(cache.participant_names)]


def fit_pitcher(probs: np.ndarray, labels: np.ndarray, l2: float) -> Dict[str, Any]:
    """Return the node parameters fitted on one pitcher's throws, and what they change."""
    if len(set(labels.tolist())) < 2:
        raise ValueError(f'{len(labels)} throws at {len(set(labels.tolist()))} block(s): '
                         'throw at several blocks of more than one row to fit a row offset')
    offset = fit_row_offset(np.log(np.clip(probs, 1e-12, None)), labels, l2)
    corrected = apply_row_offset(probs, offset)
    return {'pitcher_row_offset_top': float(offset[0]),
            'pitcher_row_offset_bottom': float(offset[2]), 'l2': l2,
            'throws': int(len(labels)), 'blocks': sorted({int(b) + 1 for b in labels}),
            'accuracy_before': float((probs.argmax(1) == labels).mean()),
            'accuracy_after_on_the_same_throws': float(
                (corrected.argmax(1) == labels).mean())}


def _fit_command(args: argparse.Namespace, l2: float, parser: argparse.ArgumentParser) -> int:
    from pitch_predictor.data.cache import CacheError
    from pitch_predictor.models.checkpoint import CheckpointError
    from pitch_predictor.shipped_model import default_model_path
    checkpoint = Path(args.checkpoint) if args.checkpoint else default_model_path()
    try:
        pitchers = pitcher_predictions(checkpoint, Path(args.data))
        names = [name for name, _, _ in pitchers]
        if args.participant is not None:
            pitchers = [p for p in pitchers if p[0] == args.participant]
            if not pitchers:
                raise ValueError(f'{args.data}: no pitcher {args.participant!r} (it holds '
                                 f'{", ".join(names)})')
        if len(pitchers) != 1:
            raise ValueError(f'{args.data} holds {len(pitchers)} pitchers ({", ".join(names)})'
                             ': name one with --participant (the offset is per person)')
        name, probs, labels = pitchers[0]
        fitted = fit_pitcher(probs, labels, l2)
    except (ValueError, CacheError, CheckpointError) as exc:
        parser.error(str(exc))
    fitted.update(pitcher=name, checkpoint=str(checkpoint), data=args.data)
    print(f"{name}: {fitted['throws']} throws at blocks {fitted['blocks']}; accuracy "
          f"{100 * fitted['accuracy_before']:.1f} % before, "
          f"{100 * fitted['accuracy_after_on_the_same_throws']:.1f} % after on the same "
          'throws (in-sample: the LOPO figures in docs/training.md are the honest ones)')
    print('node parameters (ros2 param set /pitch_predictor <name> <value>, or in the '
          'params_file given to the launch file):')
    for key in ('pitcher_row_offset_top', 'pitcher_row_offset_bottom'):
        print(f'  {key}:={fitted[key]:g}')
    if args.out:
        Path(args.out).write_text(json.dumps(fitted, indent=1))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: measure the row offset, or fit one pitcher's (``--fit``)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--runs', nargs='+', help='LOPO run folders')
    parser.add_argument('--model', default='model.pt', help='checkpoint file in each run')
    parser.add_argument('--checkpoint', default=None,
                        help='instead of --runs: one model file, scored on --data')
    parser.add_argument('--data', default=None, help='with --checkpoint: a cache of pitchers '
                        'the model never saw (each one is a fold)')
    parser.add_argument('--shots', default='1,2', help='labelled throws per block, e.g. 1,2')
    parser.add_argument('--l2', default='0', help='L2 weights on the offsets, e.g. 0,0.5 '
                        '(0, the default, was best on the seed-1 pitchers)')
    parser.add_argument('--draws', type=int, default=40,
                        help='random draws of the calibration throws per run')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--fit', action='store_true',
                        help='fit one pitcher of --data and print the node parameters')
    parser.add_argument('--participant', default=None,
                        help='with --fit: the pitcher of --data to fit')
    parser.add_argument('--out', default=None, help='write the report as JSON here')
    args = parser.parse_args(argv)
    try:
        shots = [int(v) for v in args.shots.split(',') if v.strip()]
        l2 = [float(v) for v in args.l2.split(',') if v.strip()]
    except ValueError as exc:
        parser.error(f'--shots wants integers and --l2 numbers: {exc}')
    if not shots or min(shots) < 1 or not l2 or min(l2) < 0 or args.draws < 1:
        parser.error('--shots >= 1, --l2 >= 0 and --draws >= 1')
    if args.fit:
        if args.runs or not args.data:
            parser.error('--fit takes --data (and --checkpoint), not --runs')
        if len(l2) != 1:
            parser.error('--fit takes one --l2 weight')
        return _fit_command(args, l2[0], parser)
    if bool(args.runs) == bool(args.checkpoint) or bool(args.checkpoint) != bool(args.data):
        parser.error('give either --runs, or --checkpoint with --data')
    import torch
    from pitch_predictor.data.cache import CacheError
    from pitch_predictor.models.checkpoint import CheckpointError
    torch.set_num_threads(1)
    try:
        if args.runs:
            folds = [(run, probs, labels) for run, (_, probs, labels) in
                     zip(args.runs, [fold_predictions(Path(r), args.model) for r in args.runs])]
        else:
            folds = pitcher_predictions(Path(args.checkpoint), Path(args.data))
        rows = offset_report(folds, shots, l2, args.draws, args.seed)
    except (ValueError, CacheError, CheckpointError) as exc:
        parser.error(str(exc))
    print('| calibration throws | L2 | plain % | with the row offset % | worst run: plain, '
          'with offset % | ECE (per pitcher): plain, with offset |')
    print('|---|---|---|---|---|---|')
    for row in rows:
        print(f"| {row['calibration_throws']} ({row['shots_per_block']} per block) | "
              f"{row['l2']:g} | {100 * row['plain']:.1f} | {100 * row['corrected']:.1f} | "
              f"{100 * row['worst_plain']:.1f}, {100 * row['worst_corrected']:.1f} | "
              f"{row['ece_plain']:.3f}, {row['ece_corrected']:.3f} |")
    if args.out:
        source = ({'runs': list(args.runs), 'model': args.model} if args.runs else
                  {'checkpoint': args.checkpoint, 'data': args.data})
        Path(args.out).write_text(json.dumps(dict(source, rows=rows), indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())

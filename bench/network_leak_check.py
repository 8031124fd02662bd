"""
Does the fast 2D-ConvGRU find the block in the still frames before the throw? It must not.

The network is trained by its own pipeline and recipe, ``python -m training.train
--config training/configs/fast_convgru2d.yaml`` (same split, sampling, augmentation,
optimiser and schedule), on a pre-motion copy of the cache: every trial's 40-frame
action window holds only frames from before its true motion onset (``cache.true_start``),
window position k showing frame ``floor(k * onset / 40)``. The onsets of the default set
are frames 11-37, so the still frames are stretched in time (each shown 1-4 times), and
every frame the network sees in training, validation and test comes before the onset.
The copy keeps labels, participants and trial ranks (so the split is the same trials)
and has ``start = 0``, so the unchanged window code (``pitch_predictor/window.py``'s
clamping, ``training/dataset.py``'s clips and windows, ``training/evaluate.py``) reads
the pre-motion window.

Pass line: the validation accuracy lies within the central 95 % band of chance, the
2.5 % and 97.5 % quantiles of Binomial(n, 1/9) for the n validation trials (54 on the
default set: 2..11 correct, 3.7-20.4 %). Validation is looked at once, after the last
epoch (``eval_every=0``), so no epoch is chosen on it and the band applies as it is.
Training accuracy (test-time averaged on the training trials, and the running accuracy
on augmented clips) is reported beside it: a network that fits its training set but
stays at chance on validation has memorised trials, not found the block.

    OMP_NUM_THREADS=1 .venv/bin/python bench/network_leak_check.py \
        [--cache data/synthetic/cache_fast] [--epochs 20] [--out result.json] [key=value ...]

``key=value`` overrides go to ``training.train`` after the bench's own. The pre-motion
copy (about 0.9 GB for the default set) is written under ``--run-dir`` and removed at
the end unless ``--keep-cache``. Exit code 0 on pass, 1 on fail.
"""

import argparse
import json
import math
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from pitch_predictor.data.cache import open_array_for_writing, TrialCache
from pitch_predictor.kinect import NUM_BLOCKS, WINDOW

ROOT = Path(__file__).resolve().parent.parent
CONFIG = 'training/configs/fast_convgru2d.yaml'


def pre_motion_positions(onset: int, window: int = WINDOW) -> np.ndarray:
    """
    Return the source frame of every window position: ``floor(k * onset / window)``.

    int64 ``(window,)``, non-decreasing, every value < ``onset``; for ``onset <= window``
    every frame ``0 .. onset - 1`` appears (the still frames stretched in time).
    """
    onset = int(onset)
    if onset < 1:
        raise ValueError(f'motion onset {onset}: a trial needs at least one frame before '
                         'its onset (real recordings have no true onset, -1)')
    return (np.arange(window, dtype=np.int64) * onset) // window


def build_pre_motion_cache(source: TrialCache, out_dir: Path, window: int = WINDOW
                           ) -> TrialCache:
    """
    Write a TrialCache whose trials are ``window`` frames from before their onset.

    Frames and joints follow :func:`pre_motion_positions` of ``source.true_start``;
    labels, intended blocks, participants and trial ranks are copied; ``start`` is 0
    (the window is the whole stored trial) and ``true_start`` -1 (there is no motion in
    it). Written to ``<out_dir>.partial`` and renamed at the end.
    """
    out_dir = Path(out_dir)
    onsets = np.asarray(source.true_start, dtype=np.int64)
    positions = [pre_motion_positions(o, window) for o in onsets]
    tmp = out_dir.with_name(out_dir.name + '.partial')
    for path in (tmp, out_dir):
        if path.exists():
            shutil.rmtree(path)
    tmp.mkdir(parents=True)
    n = len(source)
    frames = open_array_for_writing(tmp / 'frames.npy', np.uint8,
                                    (n, window, *source.frames.shape[2:]))
    joints = np.zeros((n, window, *source.joints.shape[2:]), np.float32)
    for trial, idx in enumerate(positions):
        frames[trial] = source.frames[trial, idx]
        joints[trial] = source.joints[trial, idx]
    frames.flush()
    del frames
    np.save(tmp / 'joints.npy', joints)
    for name in ('labels', 'intended', 'participants', 'trial_index'):
        np.save(tmp / f'{name}.npy', np.asarray(getattr(source, name), dtype=np.int64))
    np.save(tmp / 'true_start.npy', np.full(n, -1, np.int64))
    np.save(tmp / 'start.npy', np.zeros(n, np.int64))
    np.save(tmp / 'start_found.npy', np.ones(n, bool))
    meta = dict(source.meta)
    meta['pre_motion'] = {'source': str(Path(source.folder).resolve()), 'window': window,
                          'rule': 'window position k = source frame floor(k * onset / window)',
                          'onsets': onsets.tolist()}
    (tmp / 'meta.json').write_text(json.dumps(meta, indent=1))
    tmp.rename(out_dir)
    return TrialCache(out_dir)


def binomial_band(n: int, p: float, level: float = 0.95) -> Tuple[int, int]:
    """
    Return (lo, hi): the central ``level`` band of Binomial(n, p) in counts.

    ``lo`` is the smallest k with P(X < k) <= (1 - level) / 2 < P(X < k + 1), ``hi`` the
    smallest k with P(X > k) <= (1 - level) / 2: each tail outside holds at most half the
    rest (equal-tailed, exact).
    """
    tail = (1.0 - level) / 2.0
    pmf = [math.comb(n, k) * p ** k * (1.0 - p) ** (n - k) for k in range(n + 1)]
    cdf = np.cumsum(pmf)
    below = np.concatenate(([0.0], cdf[:-1]))  # P(X < k)
    lo = int(np.flatnonzero(below <= tail)[-1])
    hi = int(np.flatnonzero(1.0 - cdf <= tail)[0])
    return lo, hi


def accuracy_report(accuracy: float, n: int, chance: float) -> Dict[str, Any]:
    """Return accuracy, correct count, its binomial spread and the band of chance."""
    correct = int(round(accuracy * n))
    lo, hi = binomial_band(n, chance)
    return {
        'accuracy': round(accuracy, 4), 'correct': correct, 'trials': n,
        # Binomial standard error of the measured accuracy, and the sd of chance.
        'standard_error': round(math.sqrt(accuracy * (1.0 - accuracy) / n), 4),
        'chance_sd': round(math.sqrt(chance * (1.0 - chance) / n), 4),
        'chance_band_95_correct': [lo, hi],
        'chance_band_95': [round(lo / n, 4), round(hi / n, 4)],
        'within_chance_band': bool(lo <= correct <= hi),
    }


def summarize(metrics: Dict[str, Any], cache: TrialCache, command: List[str],
              seconds: float) -> Dict[str, Any]:
    """Return the bench's JSON from a finished run's ``metrics.json``."""
    chance = 1.0 / NUM_BLOCKS
    onsets = np.asarray(cache.true_start)
    validation = accuracy_report(float(metrics['validation']['accuracy']),
                                 int(metrics['num_validation']), chance)
    lo, hi = validation['chance_band_95_correct']
    last = metrics['history'][-1] if metrics.get('history') else {}
    return {
        'check': 'fast 2D-ConvGRU trained and scored on pre-motion frames only',
        'command': ' '.join(command),
        'cache': str(cache.folder),
        'trials': int(len(cache)),
        'split': {'train': int(metrics['num_train']),
                  'validation': int(metrics['num_validation']),
                  'test': int(metrics['num_test'])},
        'onset_frames': {'min': int(onsets.min()), 'max': int(onsets.max())},
        'window_frames': WINDOW,
        'every_frame_before_onset': bool(all(
            pre_motion_positions(o).max() < o for o in onsets)),
        'epochs': int(metrics['epochs_run']),
        'stop_reason': metrics.get('stop_reason'),
        'chance': round(chance, 4),
        'validation': validation,
        'train': {
            'accuracy': round(float(metrics['train'].get('accuracy', float('nan'))), 4),
            'running_accuracy_last_epoch': round(float(last.get('train_acc', float('nan'))), 4),
            'loss_last_epoch': round(float(last.get('train_loss', float('nan'))), 4),
            'trials': int(metrics['num_train']),
        },
        'test': accuracy_report(float(metrics['test']['accuracy']), int(metrics['num_test']),
                                chance),
        'train_seconds': round(float(metrics['train_seconds']), 1),
        'seconds': round(seconds, 1),
        'pass_line': (f'validation correct in [{lo}, {hi}] of {validation["trials"]} '
                      f'(central 95 % of Binomial({validation["trials"]}, 1/9))'),
        'pass': validation['within_chance_band'],
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Build the pre-motion cache, train on it, print and write the JSON; 0 on pass."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cache', default='data/synthetic/cache_fast')
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--run-dir', default='runs/network_leak_check',
                        help='training run folder (the pre-motion cache goes beside it)')
    parser.add_argument('--keep-cache', action='store_true')
    parser.add_argument('--out', default=None, help='write the JSON here too')
    parser.add_argument('overrides', nargs='*', help='key=value passed to training.train')
    args = parser.parse_intermixed_args(argv)
    t0 = time.time()
    source = TrialCache(args.cache)
    if (np.asarray(source.true_start) < 1).any():
        raise SystemExit(f'{args.cache}: some trials have no true motion onset (real data?); '
                         'the check needs synthetic trials')
    run_dir = Path(args.run_dir).resolve()
    cache_dir = run_dir.with_name(run_dir.name + '_cache')
    build_pre_motion_cache(source, cache_dir)
    command = [sys.executable, '-m', 'training.train', '--config', args.config,
               '--data', str(cache_dir), '--out', str(run_dir), f'epochs={args.epochs}',
               'eval_every=0', 'resume=false', *args.overrides]
    env = dict(os.environ, TQDM_DISABLE='1')
    env.setdefault('OMP_NUM_THREADS', '1')
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with (run_dir / 'train.log').open('w') as log:
            code = subprocess.call(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env=env)
    finally:
        if not args.keep_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)
    metrics_path = run_dir / 'metrics.json'
    if code != 0 or not metrics_path.exists():
        print(f'training failed (exit {code}), see {run_dir / "train.log"}', file=sys.stderr)
        return 1
    shown = ['python', '-m', 'training.train', *command[3:]]
    result = summarize(json.loads(metrics_path.read_text()), source, shown, time.time() - t0)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + '\n')
    return 0 if result['pass'] else 1


if __name__ == '__main__':
    sys.exit(main())

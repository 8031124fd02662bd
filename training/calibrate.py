"""
Refit a checkpoint's calibration temperature on another set of trials.

::

    python -m training.calibrate --model RUN/model.pt --data data/synthetic/cache_fast_newpeople \
        --out RUN/model_newpeople_T.pt

``training.train`` fits the temperature on its validation split, which holds trials of
the training pitchers: on a pitcher the model never met it is then overconfident. A
robot meets new people, so its probabilities should be calibrated on pitchers outside
the training set: e.g. a set generated with another simulator seed (``pitch-sim cache
--generate --seed 1``), never the test split or a held-out test participant. Only
``meta['temperature']`` changes; the meta records where it was fitted
(``calibration``), and the training run's test ECE, which held for the old temperature,
moves to ``calibration['test_ece_before']``. The decision is the argmax of the mean
softmax over the test clips, so a trial whose clips disagree can change its block: the
accuracy can move a little too (re-evaluate with ``training.evaluate``).
"""

import argparse
import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
from pitch_predictor.data.cache import TrialCache
from pitch_predictor.models.checkpoint import (
    build_model_from_checkpoint, load_checkpoint, save_checkpoint)
from pitch_predictor.models.decision import checkpoint_temperature
import torch
from training.evaluate import trial_clip_logits
from training.metrics import clip_nll, fit_temperature


def calibrate(model_path: Path, data: Path, out: Path) -> Dict[str, Any]:
    """Fit the temperature on every trial of ``data``; write ``out``; return a report."""
    ckpt = load_checkpoint(model_path)
    device = torch.device('cpu')
    model = build_model_from_checkpoint(ckpt, device)
    cache = TrialCache(data)
    trials = np.arange(len(cache))
    labels = np.asarray(cache.labels)
    logits = trial_clip_logits(model, cache, trials, ckpt.sampling_method, ckpt.preprocess,
                               device)
    before = checkpoint_temperature(ckpt.meta)
    after = fit_temperature(logits, labels)
    meta = dict(ckpt.meta)
    meta['temperature'] = float(after)
    meta['calibration'] = {'data': str(data), 'trials': int(len(trials)),
                           'temperature_before': before,
                           'nll_before': float(clip_nll(logits, labels, before)),
                           'nll_after': float(clip_nll(logits, labels, after))}
    if 'ece' in meta:  # measured at the old temperature: not this file's ECE any more
        meta['calibration']['test_ece_before'] = meta.pop('ece')
    save_checkpoint(out, model, model_name=ckpt.model_name, model_config=ckpt.model_config,
                    preprocess=ckpt.preprocess, sampling_method=ckpt.sampling_method,
                    meta=meta)
    return {'model': str(model_path), 'out': str(out), **meta['calibration'],
            'temperature': float(after)}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Command line entry point; prints the report as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--model', type=Path, required=True, help="a run's model.pt")
    parser.add_argument('--data', type=Path, required=True,
                        help='TrialCache of pitchers outside the training and test sets')
    parser.add_argument('--out', type=Path, required=True, help='the recalibrated checkpoint')
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = calibrate(args.model, args.data, args.out)
    print(json.dumps(report, indent=2))
    return report


if __name__ == '__main__':
    main()

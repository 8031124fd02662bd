"""
The pose GRU (``pose_gru_alexnet``, RGB only) in two steps, and its assembly.

1. ``cache``: take a pose-supervised 2D-ConvGRU run (``training.train --config
   training/configs/fast_convgru2d_pose.yaml``) and write a copy of its cache whose joints
   are the poses the run's per-frame layers and pose head predict for every frame
   (``PoseGRU.backbone``, the function the node runs; the images and every other array
   are links to the original). The run's last epoch is used: its ``state.pt`` holds the
   network and the pose head of the same step (``model.pt`` holds the best-validation
   epoch's network, whose pose head is not kept).
2. Train the GRU on that copy: ``training.train --config
   training/configs/fast_pose_gru.yaml --data <copy>`` (a ``skeleton_gru`` with
   ``image`` features, no joint augmentation: the pseudo-joints are not a body).
3. ``assemble``: one ``pose_gru_alexnet`` checkpoint from the two runs (the GRU run's
   temperature and split), checked against the GRU run on its validation trials (the same
   decision from the images as from the cached poses), its test split scored once.

    .venv/bin/python -m training.pose_gru cache --pose-run runs/rgb_pose \
        --out data/synthetic/cache_fast_pose
    .venv/bin/python -m training.train --config training/configs/fast_pose_gru.yaml \
        --data data/synthetic/cache_fast_pose --out runs/pose_gru
    .venv/bin/python -m training.pose_gru assemble --pose-run runs/rgb_pose \
        --gru-run runs/pose_gru --out runs/pose_gru/pose_gru.pt
"""

import argparse
import json
import os
from pathlib import Path
import sys
from typing import Any, Dict, Optional, Sequence

import numpy as np
from pitch_predictor.data.cache import open_array_for_writing, TrialCache
from pitch_predictor.models.checkpoint import (
    build_model_from_checkpoint, CheckpointError, load_checkpoint, save_checkpoint)
from pitch_predictor.models.decision import checkpoint_temperature
from pitch_predictor.models.preprocessing import test_transform
from pitch_predictor.models.registry import build_model
import torch
from tqdm import tqdm


class PoseGRUError(ValueError):
    """The runs do not make a pose GRU (wrong kind of run, sizes, caches)."""


def _load_json(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise PoseGRUError(f'{path.parent}: no {path.name} (not a finished training run)')
    return json.loads(path.read_text())


def pose_model_from_run(pose_run: Path, gru_config: Optional[Dict[str, Any]] = None):
    """
    Return (a ``pose_gru_alexnet`` with the run's per-frame layers and pose head, ckpt).

    ``pose_run``: a 2D-ConvGRU run trained with ``pose_loss_weight`` (its last epoch, from
    ``state.pt``). ``gru_config``: the GRU's ``hidden``, ``layers``, ``dropout``.
    """
    ckpt = load_checkpoint(pose_run / 'model.pt')
    state_path = pose_run / 'state.pt'
    if not state_path.is_file():
        raise PoseGRUError(f'{pose_run}: no state.pt')
    state = torch.load(state_path, map_location='cpu', weights_only=True)
    if not state.get('pose_probe'):
        raise PoseGRUError(f'{pose_run}: not trained with pose_loss_weight (no pose head in '
                           'state.pt)')
    cfg = ckpt.model_config
    if ckpt.model_name != 'convgru2d_alexnet' or cfg.get('motion'):
        raise PoseGRUError(f'{pose_run}: a pose GRU takes a convgru2d_alexnet run without '
                           f'motion input, got {ckpt.model_name}')
    config = {key: cfg[key] for key in ('input_size', 'negative_slope', 'lrn', 'batch_norm',
                                        'num_classes')}
    config['channels'] = list(cfg['channels'][:4])
    config.update(gru_config or {})
    model = build_model('pose_gru_alexnet', **config)
    features = {k[len('features.'):]: v for k, v in state['model'].items()
                if k.startswith('features.')}
    model.features.load_state_dict(features)
    model.pose.load_state_dict({k[len('linear.'):]: v for k, v in state['pose_probe'].items()})
    return model.eval(), ckpt


@torch.no_grad()
def write_pose_cache(model, preprocess, source: Path, out: Path, batch: int = 90,
                     progress: bool = True) -> int:
    """Write ``out``: ``source``'s cache with every frame's predicted pseudo-joints."""
    cache = TrialCache(source)
    out.mkdir(parents=True, exist_ok=True)
    for item in Path(source).iterdir():
        target = out / item.name
        if item.name != 'joints.npy' and not target.exists():
            os.symlink(item.resolve(), target)
    joints = open_array_for_writing(out / 'joints.tmp.npy', np.float32, cache.joints.shape)
    frames_per_trial = cache.frames.shape[1]
    for i in tqdm(range(len(cache)), desc='poses',
                  disable=None if progress else True):
        for begin in range(0, frames_per_trial, batch):
            crops = torch.from_numpy(np.array(cache.frames[i, begin:begin + batch]))
            joints[i, begin:begin + batch] = model.backbone(
                test_transform(crops, preprocess)).numpy()
    joints.flush()
    del joints
    os.replace(out / 'joints.tmp.npy', out / 'joints.npy')
    return len(cache)


def assemble(pose_run: Path, gru_run: Path, out: Path) -> Dict[str, Any]:
    """Write the pose GRU checkpoint; return its check and test report."""
    from training.evaluate import predict_trials, summarize_logits, trial_clip_logits
    from training.splits import make_split
    gru_metrics = _load_json(gru_run / 'metrics.json')
    gru_ckpt = load_checkpoint(gru_run / 'model.pt')
    if gru_ckpt.model_name != 'skeleton_gru' or gru_ckpt.model_config.get('features') != 'image':
        raise PoseGRUError(f'{gru_run}: needs a skeleton_gru run with image features, got '
                           f'{gru_ckpt.model_name} {gru_ckpt.model_config.get("features")}')
    gru_config = {k: gru_ckpt.model_config[k] for k in ('hidden', 'layers', 'dropout')}
    model, pose_ckpt = pose_model_from_run(pose_run, gru_config)
    model.joints.load_state_dict(gru_ckpt.state_dict)
    pose_cache = TrialCache(gru_metrics['data'])
    images = TrialCache(_load_json(pose_run / 'metrics.json')['data'])
    if list(images.trial_ids) != list(pose_cache.trial_ids):
        raise PoseGRUError(f'{gru_run} was trained on {pose_cache.folder}, whose trials are '
                           f'not those of {images.folder}')
    temperature = checkpoint_temperature(gru_ckpt.meta)
    meta = {'temperature': temperature, 'pose_run': str(pose_run), 'gru_run': str(gru_run),
            'split': gru_metrics['split'], 'data': str(images.folder)}
    split = make_split(images, gru_metrics['split'], int(gru_metrics['config'].get(
        'val_per_group', 1)), int(gru_metrics['config'].get('val_seed', 0)))
    device = torch.device('cpu')
    from_images = predict_trials(model, images, split.validation, gru_ckpt.sampling_method,
                                 pose_ckpt.preprocess, device, temperature=temperature)
    gru = build_model_from_checkpoint(gru_ckpt).eval()
    from_poses = predict_trials(gru, pose_cache, split.validation, gru_ckpt.sampling_method,
                                gru_ckpt.preprocess, device, temperature=temperature)
    diff = float(np.abs(from_images - from_poses).max()) if len(from_images) else 0.0
    if diff > 1e-3:
        raise PoseGRUError(f'the assembled model differs from the GRU run on validation by '
                           f'{diff:.2g} in probability: the pose cache was not made from '
                           'this pose run')
    labels = np.asarray(images.labels)
    logits = trial_clip_logits(model, images, split.test, gru_ckpt.sampling_method,
                               pose_ckpt.preprocess, device)
    test = summarize_logits(logits, labels[split.test], temperature)
    # The checkpoint's meta, as training.train writes it (the GRU step's epochs and seed).
    gru_meta = gru_ckpt.meta
    meta.update({'accuracy': test['accuracy'], 'ece': test['ece'],
                 'num_test': int(len(split.test)),
                 'val_accuracy': float((from_images.argmax(1)
                                        == labels[split.validation]).mean()),
                 'num_validation': int(len(split.validation)),
                 **{k: gru_meta.get(k) for k in ('epochs', 'chosen_epoch', 'val_per_group',
                                                 'val_seed', 'seed', 'date')},
                 'pose_seed': pose_ckpt.meta.get('seed'),
                 'trained_by': 'training/pose_gru.py', 'run': str(out.parent)})
    save_checkpoint(out, model, model_name='pose_gru_alexnet', model_config=model.config,
                    preprocess=pose_ckpt.preprocess, sampling_method=gru_ckpt.sampling_method,
                    meta=meta)
    return {'out': str(out), 'validation_max_prob_diff': diff,
            'validation_accuracy': float((from_images.argmax(1)
                                          == labels[split.validation]).mean()),
            'test': {k: test[k] for k in ('accuracy', 'row_accuracy', 'column_accuracy',
                                          'ece', 'nll', 'num_trials')}}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: ``cache`` or ``assemble`` (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    cache = sub.add_parser('cache', help='predicted poses of every cached frame')
    cache.add_argument('--pose-run', required=True)
    cache.add_argument('--data', default=None, help="image cache (default: the run's data)")
    cache.add_argument('--out', required=True)
    both = sub.add_parser('assemble', help='one pose_gru_alexnet checkpoint from the runs')
    both.add_argument('--pose-run', required=True)
    both.add_argument('--gru-run', required=True)
    both.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        if args.command == 'cache':
            pose_run = Path(args.pose_run)
            model, ckpt = pose_model_from_run(pose_run)
            data = Path(args.data or _load_json(pose_run / 'metrics.json')['data'])
            count = write_pose_cache(model, ckpt.preprocess, data, Path(args.out))
            print(f'wrote the poses of {count} trials to {args.out}')
        else:
            print(json.dumps(assemble(Path(args.pose_run), Path(args.gru_run),
                                      Path(args.out)), indent=1))
    except (PoseGRUError, CheckpointError) as exc:
        parser.error(str(exc))
    return 0


if __name__ == '__main__':
    sys.exit(main())

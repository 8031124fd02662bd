"""
Fuse an RGB-only run and a skeleton run into one two-stream model, fitted on validation.

::

    python -m training.fuse --rgb runs/fast_convgru2d --joints runs/fast_skeleton_gru \
        --out runs/fused_late [--mode late|features] [--data DIR] [--epochs 40] ...

Both runs must come from ``training.train`` on the same trials with the same split,
validation carving (``val_per_group``, ``val_seed``) and sampling. The RGB run gives
``two_stream_2d`` (from ``convgru2d_alexnet``) or ``two_stream_1d`` (``convgru1d_alexnet``).

- ``--mode late``: :func:`late_fusion_from_checkpoints`; the
  fusion weight w of ``w * log_softmax(rgb) + (1 - w) * log_softmax(joints)`` is chosen
  on a grid (0, 0.05, ..., 1) by the validation NLL after temperature scaling (smoother
  than accuracy on a few dozen trials); nothing else is trained.
- ``--mode features``: the branches' fused vectors, concatenated, into a new shared head;
  the branches keep their trained weights, frozen (eval mode), and only the head is
  trained: the backbone runs once per window, every epoch draws a training clip per
  trial (Table II sampling, seeded by (seed, epoch, trial)), no image or joint
  augmentation. Early stopping on validation (accuracy, then NLL) keeps the best head.

Then one temperature is fitted on validation, and the test split is evaluated once. The
folder gets ``model.pt`` (the node's checkpoint format) and ``metrics.json`` (validation
and test figures of the fused model and of each source run on the same trials).
"""

import argparse
import datetime
import json
from pathlib import Path
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from pitch_predictor.data.cache import TrialCache
from pitch_predictor.models.checkpoint import (
    build_model_from_checkpoint, Checkpoint, load_checkpoint, save_checkpoint)
from pitch_predictor.models.preprocessing import test_transform
from pitch_predictor.models.registry import build_model, model_config_defaults
from pitch_predictor.models.sampling import test_clip_indices, train_clip_indices
from pitch_predictor.models.two_stream import load_branch_weights, TWO_STREAM_MODELS
import torch
from torch import nn
from training.dataset import window_frames, window_joints
from training.evaluate import summarize_logits, trial_clip_logits
from training.metrics import clip_nll, fit_temperature
from training.splits import make_split, Split

LATE_WEIGHTS = tuple(np.round(np.linspace(0.0, 1.0, 21), 2))


class FuseError(ValueError):
    """The two runs cannot be fused (kinds, split, sampling or trials differ)."""


def load_run(run_dir: Path) -> Tuple[Checkpoint, Dict[str, Any]]:
    """Return (model.pt, metrics.json) of a finished training run."""
    run_dir = Path(run_dir)
    for name in ('model.pt', 'metrics.json'):
        if not (run_dir / name).exists():
            raise FuseError(f'{run_dir}: no {name} (not a finished training run)')
    metrics = json.loads((run_dir / 'metrics.json').read_text())
    return load_checkpoint(run_dir / 'model.pt'), metrics


def split_settings(metrics: Dict[str, Any]) -> Tuple[str, int, int]:
    """Return a run's (split, val_per_group, val_seed)."""
    cfg = metrics.get('config', {})
    return str(metrics['split']), int(cfg.get('val_per_group', 0)), int(cfg.get('val_seed', 0))


def check_sources(rgb: Tuple[Checkpoint, Dict], joints: Tuple[Checkpoint, Dict],
                  cache: TrialCache) -> Split:
    """Refuse runs that cannot be fused; return their common split."""
    rgb_names = {rgb_name for _, rgb_name in TWO_STREAM_MODELS.values()}
    if rgb[0].model_name not in rgb_names:
        raise FuseError(f'--rgb: a {sorted(rgb_names)} run is needed, got '
                        f'{rgb[0].model_name}')
    if joints[0].model_name != 'skeleton_gru':
        raise FuseError(f'--joints: a skeleton_gru run is needed, got {joints[0].model_name}')
    if split_settings(rgb[1]) != split_settings(joints[1]):
        raise FuseError(f'the runs use different splits (split, val_per_group, val_seed): '
                        f'{split_settings(rgb[1])} and {split_settings(joints[1])}')
    if rgb[0].sampling_method != joints[0].sampling_method:
        raise FuseError(f'the runs use different sampling methods: '
                        f'{rgb[0].sampling_method} and {joints[0].sampling_method}')
    for _, metrics in (rgb, joints):
        # Validation and test are trial indices: the runs' caches must hold these trials.
        data = Path(metrics['data'])
        if data.resolve() != Path(cache.folder).resolve() and data.exists() \
                and TrialCache(data).trial_ids != cache.trial_ids:
            raise FuseError(f'{data} holds other trials than {cache.folder}')
    split, per_group, seed = split_settings(rgb[1])
    result = make_split(cache, split, per_group, seed)
    if len(result.validation) == 0:
        raise FuseError('the runs have no validation split (val_per_group=0): the fusion '
                        'cannot be fitted without looking at the test split')
    return result


def two_stream_model(rgb: Checkpoint, joints: Checkpoint, **fusion: Any) -> nn.Module:
    """
    Build the two-stream model of an RGB-only and a skeleton checkpoint, weights loaded.

    ``rgb``: of ``convgru2d_alexnet`` (gives two_stream_2d) or ``convgru1d_alexnet``
    (two_stream_1d); ``joints``: of ``skeleton_gru``; ``fusion``: ``fusion_mode`` and, for
    'late', ``late_weight``.
    """
    names = {rgb_name: name for name, (_, rgb_name) in TWO_STREAM_MODELS.items()}
    if rgb.model_name not in names or joints.model_name != 'skeleton_gru':
        raise ValueError(f'a two-stream model needs a convgru1d/2d_alexnet and a skeleton_gru '
                         f'checkpoint, got {rgb.model_name!r} and {joints.model_name!r}')
    name = names[rgb.model_name]
    skeleton = {**model_config_defaults('skeleton_gru'), **joints.model_config}
    config = {k: v for k, v in rgb.model_config.items() if k in model_config_defaults(name)}
    config.update(joint_features=skeleton['features'], joint_hidden=skeleton['hidden'],
                  joint_layers=skeleton['layers'], joint_dropout=skeleton['dropout'],
                  **fusion)
    model = build_model(name, **config)
    load_branch_weights(model, rgb.state_dict, joints.state_dict)
    return model


def features_model(rgb: Checkpoint, joints: Checkpoint) -> nn.Module:
    """Build a ``'features'`` two-stream model holding both runs' branch weights."""
    return two_stream_model(rgb, joints, fusion_mode='features')


def late_fusion_from_checkpoints(rgb: Checkpoint, joints: Checkpoint,
                                 late_weight: float = 0.5) -> nn.Module:
    """Assemble a ``'late'`` two-stream model from the two checkpoints, in eval mode."""
    return two_stream_model(rgb, joints, fusion_mode='late',
                            late_weight=float(late_weight)).eval()


@torch.no_grad()
def window_inputs(model: nn.Module, cache: TrialCache, trials: np.ndarray,
                  preprocess, batch_trials: int = 8) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return the backbone features ``(n, 40, C, h, w)`` and joints of trials' windows."""
    feats, joints = [], []
    for begin in range(0, len(trials), batch_trials):
        chunk = np.asarray(trials[begin:begin + batch_trials])
        windows = test_transform(torch.from_numpy(window_frames(cache, chunk)), preprocess)
        n, t = windows.shape[:2]
        frames = model.backbone(windows.flatten(0, 1))
        feats.append(frames.reshape(n, t, *frames.shape[1:]))
        joints.append(torch.from_numpy(window_joints(cache, chunk)))
    return torch.cat(feats), torch.cat(joints)


@torch.no_grad()
def branch_vectors(model: nn.Module, feats: torch.Tensor, joints: torch.Tensor,
                   clips: torch.Tensor) -> torch.Tensor:
    """Return the concatenated branch vectors ``(n, D)`` of one clip per window."""
    rows = torch.arange(len(clips)).unsqueeze(1)
    return torch.cat([model.rgb_vector(feats[rows, clips]),
                      model.joint_vector(joints[rows, clips])], dim=1)


@torch.no_grad()
def features_clip_logits(model: nn.Module, feats: torch.Tensor, joints: torch.Tensor,
                         sampling: int) -> np.ndarray:
    """Return the fused model's test-clip logits ``(K, n, 9)`` from cached window inputs."""
    out = []
    for idx in test_clip_indices(sampling, feats.shape[1]):
        clips = torch.as_tensor(idx).expand(len(feats), -1)
        out.append(model.head(branch_vectors(model, feats, joints, clips)))
    return torch.stack(out).float().numpy()


def train_head(model: nn.Module, inputs: Dict[str, Tuple[torch.Tensor, torch.Tensor]],
               labels: Dict[str, np.ndarray], trials: np.ndarray, sampling: int,
               args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Train only ``model.head`` on frozen branches; keep the best-validation head."""
    for param in model.parameters():
        param.requires_grad_(False)
    for param in model.head.parameters():
        param.requires_grad_(True)
    model.eval()
    torch.manual_seed(args.seed)
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=args.lr,
                                  weight_decay=args.weight_decay)
    feats, joints = inputs['train']
    targets = torch.as_tensor(labels['train'])
    history: List[Dict[str, Any]] = []
    best: Optional[Tuple[Tuple[float, float], int, Dict[str, torch.Tensor]]] = None
    for epoch in range(args.epochs):
        clips = torch.as_tensor(np.stack([
            train_clip_indices(sampling, np.random.default_rng([args.seed, epoch, int(t)]))
            for t in trials]))
        vectors = branch_vectors(model, feats, joints, clips)
        order = torch.randperm(len(vectors))
        model.head.train()
        total, correct = 0.0, 0
        for begin in range(0, len(order), args.batch_size):
            batch = order[begin:begin + args.batch_size]
            logits = model.head(vectors[batch])
            loss = nn.functional.cross_entropy(logits, targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            correct += int((logits.argmax(-1) == targets[batch]).sum())
        model.head.eval()
        val_logits = features_clip_logits(model, *inputs['validation'], sampling)
        val = summarize_logits(val_logits, labels['validation'])
        history.append({'epoch': epoch + 1, 'train_loss': total / len(order),
                        'train_acc': correct / len(order), 'val_loss': val['nll'],
                        'val_acc': val['accuracy']})
        score = (val['accuracy'], -val['nll'])
        if best is None or score > best[0]:
            best = (score, epoch + 1, {k: v.clone() for k, v in model.head.state_dict().items()})
        if args.patience and epoch + 1 - best[1] >= args.patience:
            break
    model.head.load_state_dict(best[2])
    for param in model.parameters():
        param.requires_grad_(True)
    return history


def late_fusion_logits(rgb_logits: np.ndarray, joint_logits: np.ndarray,
                       weight: float) -> np.ndarray:
    """Return late fusion's clip logits: w log_softmax(rgb) + (1 - w) log_softmax(joints)."""
    rgb = torch.log_softmax(torch.from_numpy(rgb_logits), dim=-1)
    joints = torch.log_softmax(torch.from_numpy(joint_logits), dim=-1)
    return (weight * rgb + (1.0 - weight) * joints).numpy()


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--rgb', required=True, help='run folder of an RGB-only ConvGRU')
    parser.add_argument('--joints', required=True, help='run folder of a skeleton_gru')
    parser.add_argument('--out', required=True, help='folder for model.pt and metrics.json')
    parser.add_argument('--mode', choices=['late', 'features'], default='late')
    parser.add_argument('--data', default='', help='TrialCache (default: the RGB run data)')
    parser.add_argument('--epochs', type=int, default=40, help='features: head epochs')
    parser.add_argument('--lr', type=float, default=1e-3, help='features: head lr')
    parser.add_argument('--weight-decay', type=float, default=1e-2)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--patience', type=int, default=10, help='0: every epoch')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Fuse, fit on validation, evaluate the test split once, write the folder."""
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rgb, joints = load_run(Path(args.rgb)), load_run(Path(args.joints))
    cache = TrialCache(args.data or rgb[1]['data'])
    split = check_sources(rgb, joints, cache)
    sampling, preprocess = rgb[0].sampling_method, rgb[0].preprocess
    device = torch.device('cpu')
    all_labels = np.asarray(cache.labels)
    parts = ('train', 'validation', 'test')
    labels = {part: all_labels[getattr(split, part)] for part in parts}
    rgb_model = build_model_from_checkpoint(rgb[0], device)
    joint_model = build_model_from_checkpoint(joints[0], device)

    def source_logits(model: nn.Module, part: str) -> np.ndarray:
        return trial_clip_logits(model, cache, getattr(split, part), sampling, preprocess,
                                 device)

    branch_logits = {(name, part): source_logits(model, part)
                     for name, model in (('rgb', rgb_model), ('joints', joint_model))
                     for part in ('validation', 'test')}
    search: List[Dict[str, float]] = []
    history: List[Dict[str, Any]] = []
    if args.mode == 'late':
        for weight in LATE_WEIGHTS:
            logits = late_fusion_logits(branch_logits['rgb', 'validation'],
                                        branch_logits['joints', 'validation'], weight)
            temperature = fit_temperature(logits, labels['validation'])
            summary = summarize_logits(logits, labels['validation'], temperature)
            search.append({'late_weight': float(weight), 'temperature': temperature,
                           'val_nll': clip_nll(logits, labels['validation'], temperature),
                           'val_acc': summary['accuracy']})
        chosen = min(search, key=lambda s: (s['val_nll'], -s['val_acc']))
        model = late_fusion_from_checkpoints(rgb[0], joints[0], chosen['late_weight'])

        def fused_logits(part: str) -> np.ndarray:
            return source_logits(model, part)
    else:
        model = features_model(rgb[0], joints[0])
        inputs = {part: window_inputs(model.eval(), cache, getattr(split, part), preprocess)
                  for part in parts}
        history = train_head(model, inputs, labels, split.train, sampling, args)

        def fused_logits(part: str) -> np.ndarray:
            return features_clip_logits(model, *inputs[part], sampling)
    model.eval()
    val_logits = fused_logits('validation')
    temperature = fit_temperature(val_logits, labels['validation'])
    validation = summarize_logits(val_logits, labels['validation'], temperature)
    test = summarize_logits(fused_logits('test'), labels['test'], temperature)  # once
    fuse_seconds = time.perf_counter() - t0
    branches = {name: {part: summarize_logits(branch_logits[name, part], labels[part],
                                              ckpt.meta.get('temperature', 1.0))['accuracy']
                       for part in ('validation', 'test')}
                for name, ckpt in (('rgb', rgb[0]), ('joints', joints[0]))}
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        'name': out.name, 'model': model.name, 'mode': args.mode,
        'model_config': model.config, 'sampling': sampling, 'split': split.name,
        'data': str(cache.folder), 'sources': {'rgb': str(args.rgb), 'joints': str(args.joints)},
        'num_train': int(len(split.train)), 'num_validation': int(len(split.validation)),
        'num_test': int(len(split.test)), 'temperature': temperature,
        'late_weight': model.late_weight if args.mode == 'late' else None,
        'late_weight_search': search, 'head_history': history,
        'fuse_seconds': fuse_seconds,
        # Total training cost: both source runs plus this fit.
        'train_seconds': float(rgb[1].get('train_seconds', 0.0)
                               + joints[1].get('train_seconds', 0.0) + fuse_seconds),
        'epochs_run': len(history), 'seconds_per_epoch': None,
        'validation': validation, 'test': test, 'branches_accuracy': branches,
        'date': date, 'command': ' '.join(['python', '-m', 'training.fuse']
                                          + list(argv if argv is not None else sys.argv[1:])),
    }
    save_checkpoint(out / 'model.pt', model, model_name=model.name, model_config=model.config,
                    preprocess=preprocess, sampling_method=sampling,
                    meta={'accuracy': test['accuracy'], 'ece': test['ece'],
                          'num_test': int(len(split.test)), 'temperature': temperature,
                          'val_accuracy': validation['accuracy'],
                          'num_validation': int(len(split.validation)),
                          'split': split.name, 'val_per_group': split_settings(rgb[1])[1],
                          'val_seed': split_settings(rgb[1])[2], 'data': str(cache.folder),
                          'seed': args.seed, 'date': date, 'fusion_mode': args.mode,
                          'sources': result['sources'], 'trained_by': 'training/fuse.py',
                          'run': out.name})
    (out / 'metrics.json').write_text(json.dumps(result, indent=2))
    print(f'{model.name} ({args.mode}): validation accuracy {validation["accuracy"]:.4f}, '
          f'test accuracy {test["accuracy"]:.4f} ({len(split.test)} trials; RGB alone '
          f'{branches["rgb"]["test"]:.4f}, joints alone {branches["joints"]["test"]:.4f}), '
          f'T={temperature:.3f} -> {out}')
    return result


if __name__ == '__main__':
    main()

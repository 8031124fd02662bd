"""
Train one network on the trial cache: one explicit loop, nanoGPT style.

Single process (CPU or one GPU)::

    python -m training.train --config training/configs/fast_convgru2d.yaml \
        [--data DIR] [--out DIR] [key=value ...]

Several GPUs or nodes (DistributedDataParallel; gloo on CPU, NCCL on CUDA), no change::

    torchrun --standalone --nproc_per_node 2 -m training.train --config ...

The split (``training.splits``) is train / validation / test: validation is scored every
``eval_every`` epochs, early stopping (``patience``) and the kept weights use it, and the
test split is evaluated once, at the end, on those weights.

The run folder gets ``state.pt`` (resume point, rewritten every epoch), ``model.pt``
(the node's checkpoint format), ``metrics.json``, ``confusion.csv``/``.png``,
``curves.png``, ``predictions.csv`` (test trials) and ``config.yaml``. Rerunning the same command
resumes from ``state.pt``; a larger ``epochs=`` continues a finished run.
"""

import argparse
import csv
from dataclasses import dataclass
import datetime
import json
import math
import os
from pathlib import Path
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from pitch_predictor.data.cache import TrialCache
from pitch_predictor.kinect import CLASS_NAMES
from pitch_predictor.models.checkpoint import save_checkpoint
from pitch_predictor.models.device import select_device
from pitch_predictor.models.preprocessing import (
    fast_preprocess, paper_preprocess, PreprocessConfig)
from pitch_predictor.models.registry import build_model, fast_config, model_config_defaults
import torch
from torch import nn
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler
from tqdm import tqdm
from training.config import (
    cache_list, ConfigError, load_config, parse_overrides, save_config, TrainConfig)
from training.dataset import augment_batch, ClipCollate, ClipDataset
from training.evaluate import decide, evaluate_on_cache, summarize_logits, trial_clip_logits
from training.joint_augment import JointAugmentConfig
from training.metrics import fit_temperature, summarize
from training.plots import plot_confusion, plot_curves
from training.pose_supervision import make_pose_probe, pose_supervised_loss
from training.splits import make_split, Split, SplitError

# Keys whose change makes an existing run folder a different run (resume refuses it).
RUN_IDENTITY_KEYS = ('model', 'model_preset', 'model_config', 'preprocess', 'sampling',
                     'split', 'val_per_group', 'val_seed', 'seed', 'batch_size', 'optimizer',
                     'pretrained', 'init', 'extra_train_data', 'extra_train_pitchers',
                     'pose_loss_weight')


@dataclass
class Distributed:
    """Where this process sits in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """Return True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Return True on the process that evaluates and writes files."""
        return self.rank == 0


def setup_distributed(device_pref: str) -> Tuple[Distributed, torch.device]:
    """Join the process group torchrun describes in the environment; pick the device."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    info = Distributed(int(os.environ.get('RANK', '0')), int(os.environ.get('LOCAL_RANK', '0')),
                       world_size)
    device = select_device(device_pref)
    if device.type == 'cuda' and info.enabled:
        device = torch.device('cuda', info.local_rank)
        torch.cuda.set_device(device)
    if info.enabled:
        dist.init_process_group(backend='nccl' if device.type == 'cuda' else 'gloo')
    return info, device


def resolve_preprocess(spec: Any) -> PreprocessConfig:
    """Return the PreprocessConfig for 'paper', 'fast' or a dict (optional 'preset' key)."""
    presets = {'paper': paper_preprocess, 'fast': fast_preprocess}
    if isinstance(spec, str):
        if spec not in presets:
            raise ConfigError(f'preprocess: unknown preset {spec!r} (use paper, fast or a dict)')
        return presets[spec]()
    if isinstance(spec, dict):
        values = dict(spec)
        base = presets[values.pop('preset', 'paper')]().to_dict()
        base.update(values)
        return PreprocessConfig.from_dict(base)
    raise ConfigError(f'preprocess must be a preset name or a mapping, got {spec!r}')


def resolve_model_config(cfg: TrainConfig) -> Dict[str, Any]:
    """Return the full keyword config for ``build_model``: preset, then explicit overrides."""
    presets = {'paper': model_config_defaults, 'fast': fast_config}
    if cfg.model_preset not in presets:
        raise ConfigError(f'model_preset must be paper or fast, got {cfg.model_preset!r}')
    kwargs = presets[cfg.model_preset](cfg.model)
    unknown = sorted(set(cfg.model_config) - set(kwargs))
    if unknown:
        raise ConfigError(f'model_config: {cfg.model} takes no {unknown} '
                          f'(it takes {sorted(kwargs)})')
    kwargs.update(cfg.model_config)
    return kwargs


def open_cache(data: str, preprocess: Optional[PreprocessConfig]) -> TrialCache:
    """Open the TrialCache in ``data``; check its crops' size (models with images)."""
    cache = TrialCache(data)
    stored = cache.preprocess.stored_size
    if preprocess is not None and stored != preprocess.stored_size:
        raise ConfigError(f'{data}: cache stores {stored}px crops but the config wants '
                          f'{preprocess.stored_size}px (preprocess={preprocess})')
    return cache


def split_trials(cache: TrialCache, cfg: TrainConfig) -> Split:
    """Return the config's train / validation / test split (``training.splits``)."""
    try:
        split = make_split(cache, cfg.split, cfg.val_per_group, cfg.val_seed)
    except SplitError as exc:
        raise ConfigError(str(exc)) from None
    if len(split.train) == 0 or len(split.test) == 0:
        raise ConfigError(f'{cfg.data}: split {cfg.split!r} leaves {split.sizes()} trials; '
                          'train and test must be non-empty')
    return split


class TrainingSet(ConcatDataset):
    """The training trials of several caches, one epoch selector for all of them."""

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of every part."""
        for part in self.datasets:
            part.set_epoch(epoch)


def better(score: Tuple[float, float], best: Optional[Tuple[float, float]]) -> bool:
    """Return True when (accuracy, nll) beats ``best``: higher accuracy, then lower NLL."""
    if best is None:
        return True
    return score[0] > best[0] or (score[0] == best[0] and score[1] < best[1])


def two_stream_loss(model: nn.Module, clips: torch.Tensor, joints: torch.Tensor,
                    labels: torch.Tensor, cfg: TrainConfig) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Return (fused logits, loss): the fused cross-entropy plus auxiliary per-branch ones.

    ``loss = CE(fused) + aux_loss_weight * (CE(rgb branch) + CE(skeleton branch))``: each
    branch must classify on its own too, so neither leans on the other.
    """
    batch, steps = clips.shape[:2]
    feats = model.backbone(clips.flatten(0, 1)).unflatten(0, (batch, steps))
    out = model.forward_branches(feats, joints)

    def ce(logits: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), labels,
                                           label_smoothing=cfg.label_smoothing)
    loss = ce(out.logits) + cfg.aux_loss_weight * (ce(out.rgb_logits) + ce(out.joint_logits))
    return out.logits, loss


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Return the optimizer (Adam's weight_decay is the paper's L2 penalty)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == 'adam':
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == 'adamw':
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == 'sgd':
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise ConfigError(f'optimizer must be adam, adamw or sgd, got {cfg.optimizer!r}')


def learning_rate(cfg: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Return the learning rate at an optimizer step: linear warmup, then constant or cosine."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.lr_schedule == 'constant':
        return cfg.lr
    if cfg.lr_schedule == 'cosine':
        progress = (step - warmup) / max(1, total_steps - warmup)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    raise ConfigError(f'lr_schedule must be constant or cosine, got {cfg.lr_schedule!r}')


def initialise(model: nn.Module, scheme: str, negative_slope: float) -> None:
    """Re-initialise the feed-forward weights ('kaiming') or keep the builder's ('default')."""
    if scheme == 'default':
        return
    if scheme != 'kaiming':
        raise ConfigError(f'init must be default or kaiming, got {scheme!r}')
    recurrent = {id(p) for name, module in model.named_modules()
                 if 'recurrent' in name or isinstance(module, nn.GRU) for p in module.parameters()}
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.Linear)) \
                and id(module.weight) not in recurrent:
            # He et al.: keeps the activation scale through leaky-ReLU layers, which
            # PyTorch's default (uniform, fan-in / 3) lets shrink layer by layer.
            nn.init.kaiming_normal_(module.weight, a=negative_slope, nonlinearity='leaky_relu')
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def load_pretrained(model: nn.Module, path: str) -> None:
    """Load ImageNet AlexNet weights from a local file into the model's backbone."""
    from pitch_predictor.models import networks
    loader = getattr(networks, 'load_imagenet_alexnet', None)
    if loader is None:
        raise ConfigError('pretrained: this version of pitch_predictor.models.networks cannot '
                          'load ImageNet AlexNet weights')
    loader(model, path)


def init_branches(model: nn.Module, kind: str, cfg: TrainConfig) -> None:
    """Start a two-stream model's branches from trained RGB-only / skeleton checkpoints."""
    from pitch_predictor.models.checkpoint import load_checkpoint
    from pitch_predictor.models.two_stream import load_branch_weights
    if kind != 'rgb+joints':
        raise ConfigError(f'init_rgb / init_joints need a two-stream model, {cfg.model} '
                          f'takes {kind}')
    try:
        load_branch_weights(
            model, load_checkpoint(cfg.init_rgb).state_dict if cfg.init_rgb else None,
            load_checkpoint(cfg.init_joints).state_dict if cfg.init_joints else None)
    except ValueError as exc:
        raise ConfigError(f'init_rgb / init_joints: {exc}') from None


def check_resumable(state: Dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    """Refuse to resume a run folder that holds a different run."""
    saved = state.get('config', {})
    default = TrainConfig().to_dict()  # a key older runs did not record had its default
    changed = [k for k in RUN_IDENTITY_KEYS if saved.get(k, default[k]) != cfg.to_dict()[k]]
    if changed:
        raise ConfigError(f'{path} holds a different run (changed: {", ".join(changed)}); '
                          'use another --out or resume=false')


def write_predictions(path: Path, cache: TrialCache, trials: np.ndarray,
                      probs: np.ndarray) -> None:
    """Write one row per test trial: ids, true and predicted block, probabilities."""
    with path.open('w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['trial', 'participant', 'trial_index', 'true_block', 'pred_block']
                        + [f'p_block{b}' for b in range(1, 10)])
        for trial, p in zip(trials, probs):
            participant = cache.participant_names[int(cache.participants[trial])]
            writer.writerow([int(trial), participant, int(cache.trial_index[trial]),
                             int(cache.labels[trial]) + 1, int(p.argmax()) + 1]
                            + [f'{v:.5f}' for v in p])


def write_confusion_csv(path: Path, matrix: List[List[int]]) -> None:
    """Write the confusion matrix with block numbers as row and column headers."""
    with path.open('w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['true\\pred'] + [str(b) for b in range(1, 10)])
        for block, row in enumerate(matrix, start=1):
            writer.writerow([block] + list(row))


def ranks_weight_difference(model: nn.Module) -> List[float]:
    """Return, for every rank, the largest |weight - rank 0's weight| (all 0 when in sync)."""
    flat = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    mine = (flat - reference).abs().max().reshape(1).float()
    gathered = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mine)
    return [float(d) for d in gathered]


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--config', help='YAML file under training/configs/')
    parser.add_argument('--data', help='TrialCache folder (overrides the config)')
    parser.add_argument('--out', help='run folder (default runs/<config name>)')
    parser.add_argument('overrides', nargs='*', help='key=value overrides of config keys')
    # Intermixed: options may come after key=value overrides (a plain parse_args then
    # rejects the overrides that follow an option).
    return parser.parse_intermixed_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Train, evaluate and write the run folder; return the metrics (on rank 0)."""
    args = parse_args(argv)
    overrides = parse_overrides(args.overrides)
    if args.data:
        overrides['data'] = args.data
    if args.out:
        overrides['out'] = args.out
    cfg = load_config(args.config, overrides)
    ddp, device = setup_distributed(cfg.device)
    cuda = device.type == 'cuda'
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    elif ddp.enabled and not cuda:
        # Several CPU ranks on one machine would otherwise oversubscribe its cores.
        local = int(os.environ.get('LOCAL_WORLD_SIZE', ddp.world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    run_dir = cfg.run_dir()
    if ddp.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / 'config.yaml')
    log = print if ddp.is_main else (lambda *a, **k: None)
    # Progress bars on rank 0 only; TQDM_DISABLE=1 (the experiment runner) keeps logs clean.
    quiet = not ddp.is_main or os.environ.get('TQDM_DISABLE', '') == '1'

    # ---- model (same seed on every rank; DDP also broadcasts rank 0's weights)
    preprocess = resolve_preprocess(cfg.preprocess)
    model_config = resolve_model_config(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, **model_config)
    initialise(model, cfg.init, float(model_config.get('negative_slope', 0.0)))
    if cfg.pretrained:
        load_pretrained(model, cfg.pretrained)
    kind = getattr(model, 'input_kind', 'rgb')
    if cfg.init_rgb or cfg.init_joints:
        init_branches(model, kind, cfg)
    if kind != 'joints' and getattr(model, 'input_size', 0) not in (0, preprocess.output_size):
        raise ConfigError(f'{cfg.model} takes {model.input_size}px input but preprocess '
                          f'gives {preprocess.output_size}px')

    # ---- data: memory-mapped uint8 crops, one sample = one clip of the detected window
    cache = open_cache(cfg.data, preprocess if kind != 'joints' else None)
    split = split_trials(cache, cfg)
    train_idx, val_idx, test_idx = split.train, split.validation, split.test
    validating = len(val_idx) > 0
    model.to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    probe = None
    if cfg.pose_loss_weight > 0:
        if ddp.enabled:
            raise ConfigError('pose_loss_weight needs one process (world size '
                              f'{ddp.world_size})')
        try:
            probe = make_pose_probe(model, preprocess.output_size).to(device)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    optimizer = make_optimizer(model if probe is None else nn.ModuleList([model, probe]), cfg)
    num_params = sum(p.numel() for p in model.parameters())

    start_epoch, history, elapsed_before = 0, [], 0.0
    # The best validation epoch so far: its (accuracy, nll) and weights (CPU copies).
    best_epoch, best_score, best_weights = 0, None, None
    state_path = run_dir / 'state.pt'
    if cfg.resume and state_path.exists():
        state = torch.load(state_path, map_location='cpu', weights_only=True)
        check_resumable(state, cfg, state_path)
        model.load_state_dict(state['model'])
        if probe is not None:
            probe.load_state_dict(state['pose_probe'])
        optimizer.load_state_dict(state['optimizer'])
        start_epoch, history = int(state['epoch']), list(state['history'])
        elapsed_before = float(state.get('train_seconds', 0.0))
        if state.get('best_model') is not None:
            best_epoch, best_weights = int(state['best_epoch']), state['best_model']
            best_score = (float(state['best_score'][0]), float(state['best_score'][1]))
        log(f'resuming {run_dir} after epoch {start_epoch}')
    raw_model = model
    if ddp.enabled:
        model = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)

    try:
        joint_augment = JointAugmentConfig.from_dict(cfg.joint_augment)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if cfg.aux_loss_weight > 0 and (kind != 'rgb+joints' or ddp.enabled):
        raise ConfigError('aux_loss_weight needs a two-stream model and one process '
                          f'(model {cfg.model} takes {kind}, world size {ddp.world_size})')
    # Pose supervision reads the joints of the sampled frames beside the images.
    train_kind = 'rgb+joints' if probe is not None else kind
    dataset = ClipDataset(cfg.data, train_idx, cfg.sampling, kind=train_kind, seed=cfg.seed,
                          joint_augment=joint_augment)
    # Extra training pitchers: one cache, or several separated by commas; the first
    # extra_train_pitchers of them over the caches in order (0: all).
    extra_parts = []
    remaining = cfg.extra_train_pitchers or None
    for number, folder in enumerate(cache_list(cfg.extra_train_data)):
        if not Path(folder).is_dir():
            raise ConfigError(
                f'extra_train_data {folder}: no such cache; make it with '
                f'`pitch-sim cache --generate --preprocess fast --participants 24 --trials 4 '
                f'--seed S --out {folder}` (S: a simulator seed of its own, not 0 or 1, '
                f'which are the dataset and the cross-person set; the default config uses '
                f'2-5 in the order listed; about 10 min, 3.4 GB), or train without it: '
                f'extra_train_data=""')
        extra = open_cache(folder, preprocess if kind != 'joints' else None)
        pitchers = len(extra.participant_names)
        if remaining is not None:
            pitchers = min(pitchers, remaining)
            remaining -= pitchers
        extra_idx = np.flatnonzero(np.asarray(extra.participants) < pitchers)
        if len(extra_idx):
            extra_parts.append(ClipDataset(folder, extra_idx, cfg.sampling, kind=train_kind,
                                           seed=cfg.seed + 7919 * (number + 1),
                                           joint_augment=joint_augment))
        log(f'{folder}: {len(extra_idx)} extra training trials ({pitchers} pitchers)')
    if extra_parts:
        dataset = TrainingSet([dataset, *extra_parts])
    # CPU: the batched image augmentation runs in the loader workers, overlapping the
    # step; GPU: on the device, in the main process.
    images = kind != 'joints'
    augment_in_loader = images and not cuda and cfg.num_workers > 0
    collate = ClipCollate(preprocess, cfg.seed, augment=augment_in_loader)
    sampler = DistributedSampler(dataset, num_replicas=ddp.world_size, rank=ddp.rank,
                                 shuffle=True, seed=cfg.seed)
    per_rank_batch = max(1, math.ceil(cfg.batch_size / ddp.world_size))
    loader = DataLoader(dataset, batch_size=per_rank_batch, sampler=sampler,
                        num_workers=cfg.num_workers, pin_memory=cuda, drop_last=False,
                        persistent_workers=False, collate_fn=collate)
    steps_per_epoch = len(loader)
    total_steps = cfg.epochs * steps_per_epoch
    log(f'{cfg.name}: {cfg.model} ({num_params / 1e6:.2f} M params, {kind}) sampling '
        f'{cfg.sampling}, {len(train_idx)} train / {len(val_idx)} validation / '
        f'{len(test_idx)} test trials, {cfg.epochs} epochs x {steps_per_epoch} steps, '
        f'device {device}, world {ddp.world_size}')

    def clip_logits(trials: np.ndarray) -> np.ndarray:
        return trial_clip_logits(raw_model, cache, trials, cfg.sampling, preprocess, device,
                                 autocast=cfg.amp)

    def evaluate(trials: np.ndarray) -> Tuple[np.ndarray, Dict[str, Any]]:
        probs = decide(clip_logits(trials))
        return probs, summarize(probs, np.asarray(cache.labels)[trials], CLASS_NAMES)

    def patience_spent(epoch: int) -> bool:
        return validating and cfg.patience > 0 and best_score is not None \
            and epoch - best_epoch >= cfg.patience

    # ---- the loop
    train_seconds = elapsed_before
    stop_reason = 'epochs'
    if start_epoch > 0 and patience_spent(start_epoch):
        stop_reason = 'patience'  # a resumed run that had already stopped early
    for epoch in range(start_epoch, cfg.epochs if stop_reason == 'epochs' else start_epoch):
        model.train()
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        collate.set_epoch(epoch)
        t0 = time.perf_counter()
        sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n
        pose_sum = 0.0  # pose MSE * n (pose supervision)
        bar = tqdm(loader, desc=f'epoch {epoch + 1}/{cfg.epochs}', disable=quiet,
                   leave=False, dynamic_ncols=True)
        # Time spent blocked on the loader: near 0 when the input pipeline keeps up.
        data_seconds, t_ready = 0.0, time.perf_counter()
        for i, (clips, labels, trials) in enumerate(bar):
            data_seconds += time.perf_counter() - t_ready
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group['lr'] = learning_rate(cfg, step, total_steps, steps_per_epoch)
            # inputs: (clips,), (joints,) or (clips, joints) for a two-stream model.
            inputs = [x.to(device, non_blocking=True)
                      for x in (clips if isinstance(clips, (tuple, list)) else (clips,))]
            labels = labels.to(device, non_blocking=True)
            if images and not augment_in_loader:
                inputs[0] = augment_batch(inputs[0], trials.tolist(), preprocess, cfg.seed,
                                          epoch)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda and cfg.amp):
                if probe is not None:
                    logits, loss, pose_mse = pose_supervised_loss(
                        raw_model, probe, *inputs, labels, cfg.pose_loss_weight,
                        cfg.label_smoothing)
                    pose_sum += float(pose_mse) * labels.shape[0]
                elif cfg.aux_loss_weight > 0:
                    logits, loss = two_stream_loss(raw_model, *inputs, labels, cfg)
                else:
                    logits = model(*inputs)
                    loss = nn.functional.cross_entropy(logits.float(), labels,
                                                       label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            n = labels.shape[0]
            sums += torch.tensor([loss.item() * n,
                                  (logits.argmax(-1) == labels).sum().item(), n],
                                 dtype=torch.float64)
            bar.set_postfix(loss=f'{sums[0] / sums[2]:.3f}', acc=f'{sums[1] / sums[2]:.3f}')
            t_ready = time.perf_counter()
        if ddp.enabled:
            dist.all_reduce(sums)
        epoch_seconds = time.perf_counter() - t0
        train_seconds += epoch_seconds
        record = {'epoch': epoch + 1, 'train_loss': float(sums[0] / sums[2]),
                  'train_acc': float(sums[1] / sums[2]), 'epoch_seconds': epoch_seconds,
                  'data_wait_seconds': data_seconds,
                  'lr': optimizer.param_groups[0]['lr'], 'val_loss': None, 'val_acc': None}
        if probe is not None:
            record['pose_mse'] = pose_sum / float(sums[2])
        last = epoch + 1 == cfg.epochs
        # flags: out of time (every rank knows), patience spent (rank 0 validates). Every
        # rank takes the same decision, so no rank waits on a collective alone.
        flags = torch.tensor([float(cfg.max_minutes > 0
                                    and train_seconds > cfg.max_minutes * 60), 0.0])
        if ddp.is_main:
            if validating and (last or bool(flags[0]) or (
                    cfg.eval_every > 0 and (epoch + 1) % cfg.eval_every == 0)):
                _, metrics = evaluate(val_idx)
                record.update(val_loss=metrics['nll'], val_acc=metrics['accuracy'])
                score = (metrics['accuracy'], metrics['nll'])
                if better(score, best_score):
                    best_epoch, best_score = epoch + 1, score
                    best_weights = {k: v.detach().cpu().clone()
                                    for k, v in raw_model.state_dict().items()}
                flags[1] = float(patience_spent(epoch + 1))
            history.append(record)
            val_text = ('' if record['val_acc'] is None
                        else f' val acc {record["val_acc"]:.3f} (best {best_score[0]:.3f} '
                             f'at epoch {best_epoch})')
            pose_text = f' pose mse {record["pose_mse"]:.3f}' if probe is not None else ''
            log(f'epoch {epoch + 1}: loss {record["train_loss"]:.3f}{pose_text} train acc '
                f'{record["train_acc"]:.3f}{val_text} ({epoch_seconds:.1f} s, '
                f'{data_seconds:.1f} s waiting for data)')
            torch.save({'model': raw_model.state_dict(), 'optimizer': optimizer.state_dict(),
                        'epoch': epoch + 1, 'history': history, 'config': cfg.to_dict(),
                        'train_seconds': train_seconds, 'best_epoch': best_epoch,
                        'best_score': list(best_score) if best_score else None,
                        'best_model': best_weights,
                        'pose_probe': None if probe is None else probe.state_dict()},
                       state_path.with_name(state_path.name + '.tmp'))
            # Renamed once whole: a full disk or a kill mid-write leaves the last good state.
            os.replace(state_path.with_name(state_path.name + '.tmp'), state_path)
            plot_curves(history, run_dir / 'curves.png', title=cfg.name)
        if ddp.enabled:
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            dist.barrier()
        if flags[1] and not last:
            stop_reason = 'patience'
            log(f'stopping after epoch {epoch + 1}: no better validation score for '
                f'{cfg.patience} epochs (best: epoch {best_epoch})')
            break
        if flags[0] and not last:
            stop_reason = 'max_minutes'
            log(f'stopping after epoch {epoch + 1}: max_minutes={cfg.max_minutes} reached')
            break

    # ---- final evaluation and the run folder (rank 0)
    rank_weight_diffs = ranks_weight_difference(raw_model) if ddp.enabled else [0.0]
    result: Dict[str, Any] = {}
    if ddp.is_main:
        epochs_run = len(history)
        chosen_epoch = epochs_run
        if validating and best_weights is not None:
            raw_model.load_state_dict(best_weights)
            chosen_epoch = best_epoch
        chosen = next((h for h in history if h['epoch'] == chosen_epoch), {})
        t0 = time.perf_counter()
        labels = np.asarray(cache.labels)
        # Calibration: one temperature fitted on validation (the decision's NLL).
        temperature, val_metrics = 1.0, None
        if validating:
            val_logits = clip_logits(val_idx)
            if cfg.calibrate:
                temperature = fit_temperature(val_logits, labels[val_idx])
            val_metrics = summarize_logits(val_logits, labels[val_idx], temperature)
        test_logits = clip_logits(test_idx)  # the only look at the test split
        metrics = summarize_logits(test_logits, labels[test_idx], temperature)
        probs = decide(test_logits, temperature)
        eval_seconds = time.perf_counter() - t0
        train_metrics = {'running_accuracy': chosen.get('train_acc'),
                         'running_loss': chosen.get('train_loss'),
                         'num_trials': int(len(train_idx))}
        if cfg.eval_train:
            train_metrics.update(summarize_logits(clip_logits(train_idx), labels[train_idx],
                                                  temperature))
        miss = None
        if cfg.miss_data:  # every trial of a miss set: actual vs intended block
            miss_cache = open_cache(cfg.miss_data, preprocess if kind != 'joints' else None)
            miss = evaluate_on_cache(raw_model, miss_cache, np.arange(len(miss_cache)),
                                     cfg.sampling, preprocess, device, temperature)
        epoch_times = [h['epoch_seconds'] for h in history]
        result = {
            'name': cfg.name, 'model': cfg.model, 'model_config': model_config,
            'preprocess': preprocess.to_dict(), 'sampling': cfg.sampling, 'split': cfg.split,
            'data': str(cfg.data), 'num_train': int(len(train_idx)),
            'extra_train_data': str(cfg.extra_train_data),
            'num_extra_train': int(len(dataset) - len(train_idx)),
            'num_validation': int(len(val_idx)),
            'num_test': int(len(test_idx)), 'num_parameters': int(num_params),
            'epochs_run': epochs_run, 'chosen_epoch': chosen_epoch, 'temperature': temperature,
            'stop_reason': stop_reason, 'world_size': ddp.world_size, 'device': str(device),
            'seconds_per_epoch': float(np.mean(epoch_times)) if epoch_times else None,
            # Share of training time the loop waited for the input pipeline (the first
            # batch of each epoch includes starting the workers).
            'data_wait_fraction': (
                float(sum(h.get('data_wait_seconds', 0.0) for h in history) / sum(epoch_times))
                if epoch_times else None),
            'train_seconds': train_seconds, 'eval_seconds': eval_seconds,
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'command': ' '.join([os.path.basename(sys.executable), '-m', 'training.train']
                                + list(argv if argv is not None else sys.argv[1:])),
            'train': train_metrics, 'validation': val_metrics, 'test': metrics, 'miss': miss,
            'history': history, 'config': cfg.to_dict(),
            'max_weight_diff_to_rank0': rank_weight_diffs,
        }
        save_checkpoint(run_dir / 'model.pt', raw_model, model_name=cfg.model,
                        model_config=model_config, preprocess=preprocess,
                        sampling_method=cfg.sampling,
                        meta={'accuracy': metrics['accuracy'], 'ece': metrics['ece'],
                              'temperature': temperature,
                              'num_test': int(len(test_idx)),
                              'val_accuracy': val_metrics['accuracy'] if validating else None,
                              'num_validation': int(len(val_idx)),
                              'epochs': epochs_run, 'chosen_epoch': chosen_epoch,
                              'split': cfg.split, 'val_per_group': cfg.val_per_group,
                              'val_seed': cfg.val_seed, 'data': str(cfg.data),
                              'seed': cfg.seed, 'date': result['date'],
                              'trained_by': 'training/train.py', 'run': cfg.name})
        (run_dir / 'metrics.json').write_text(json.dumps(result, indent=2))
        write_confusion_csv(run_dir / 'confusion.csv', metrics['confusion_matrix'])
        plot_confusion(np.asarray(metrics['confusion_matrix']), CLASS_NAMES,
                       run_dir / 'confusion.png',
                       title=f'{cfg.name}: test accuracy {metrics["accuracy"]:.3f}')
        write_predictions(run_dir / 'predictions.csv', cache, test_idx, probs)
        plot_curves(history, run_dir / 'curves.png', title=cfg.name)
        val_text = (f'validation accuracy {val_metrics["accuracy"]:.4f} (epoch '
                    f'{chosen_epoch} of {epochs_run}), ' if validating else '')
        log(f'{cfg.name}: {val_text}test accuracy {metrics["accuracy"]:.4f} '
            f'({len(test_idx)} trials), ECE {metrics["uncalibrated"]["ece"]:.4f} -> '
            f'{metrics["ece"]:.4f} at T={temperature:.3f}, '
            f'{result["seconds_per_epoch"] or 0:.1f} s/epoch -> {run_dir}')
    if ddp.enabled:
        dist.barrier()
        dist.destroy_process_group()
    return result


if __name__ == '__main__':
    main()

"""
Throughput of the training input pipeline against a naive per-sample one, same machine.

Ours (``training/dataset.py``, as training runs it on a CPU): DataLoader workers
fancy-index uint8 clips from the memory-mapped TrialCache and run ``train_transform`` once
per batch on whole tensors (``ClipCollate``). Naive: a DataLoader whose dataset, per
sample and per frame, reads the frame (an image file of the dataset layout when ``--layout``
is given, else the cached crop), makes a PIL image and runs torchvision transforms
(RandomCrop, Resize, ColorJitter, ToTensor, Normalize). Both produce the same float batches
``(B, T, 3, out, out)``. For scale, it also times training steps of the fast 2D-ConvGRU
(forward, backward, AdamW) on such batches: a pipeline that delivers fewer clips per
second than the step consumes starves training. Prints clips per second and the ratios::

    python bench/input_pipeline.py --data data/synthetic/cache_fast [--layout DIR]
"""

import argparse
import json
from pathlib import Path
import sys
import time
from typing import Callable, Dict, Iterable, Optional

import numpy as np
from PIL import Image
from pitch_predictor.data.cache import paper_split, TrialCache
from pitch_predictor.models.preprocessing import (
    crop_frames, fast_preprocess, paper_preprocess, PreprocessConfig, train_transform)
from pitch_predictor.models.sampling import train_clip_indices
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `training`

from training.dataset import ClipCollate, ClipDataset, window_start  # noqa: E402


class NaiveClipDataset(Dataset):
    """Per-sample, per-frame PIL + torchvision transforms (the usual tutorial pipeline)."""

    def __init__(self, cache_dir: str, trials: np.ndarray, method: int,
                 preprocess: PreprocessConfig, frame_paths: Optional[list] = None) -> None:
        self.cache = TrialCache(cache_dir)
        self.trials = trials
        self.method = method
        self.preprocess = preprocess
        self.frame_paths = frame_paths
        crop = round(preprocess.stored_size * preprocess.train_crop_fraction)
        self.transform = transforms.Compose([
            transforms.RandomCrop(crop),
            transforms.Resize(preprocess.output_size),
            transforms.ColorJitter(*preprocess.jitter),
            transforms.ToTensor(),
            transforms.Normalize(preprocess.mean, preprocess.std),
        ])
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.trials)

    def _frame(self, trial: int, index: int) -> Image.Image:
        if self.frame_paths is None:
            return Image.fromarray(np.asarray(self.cache.frames[trial, index]))
        # The naive way also decodes and crops the camera frame on every access.
        frame = np.asarray(Image.open(self.frame_paths[trial][index]).convert('RGB'))
        return Image.fromarray(crop_frames(frame, self.preprocess)[0])

    def __getitem__(self, item: int):
        trial = int(self.trials[item])
        frames = window_start(self.cache, trial) + train_clip_indices(self.method, self.rng)
        clip = torch.stack([self.transform(self._frame(trial, int(f))) for f in frames])
        return clip, int(self.cache.labels[trial])


def clips_per_second(batches: Iterable, transform: Callable, num_batches: int) -> float:
    """Time ``num_batches`` batches (after one warm-up batch); return clips per second."""
    iterator = iter(batches)
    transform(next(iterator)[0])
    count, start = 0, time.perf_counter()
    for _ in range(num_batches):
        clips = next(iterator)[0]
        out = transform(clips)
        count += out.shape[0]
    return count / (time.perf_counter() - start)


def training_clips_per_second(clips: torch.Tensor, steps: int) -> float:
    """Return clips/s of fast 2D-ConvGRU training steps on ``clips`` (one warm-up step)."""
    from pitch_predictor.models.registry import build_model, fast_config
    torch.manual_seed(0)
    model = build_model('convgru2d_alexnet', **fast_config('convgru2d_alexnet')).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    labels = torch.arange(clips.shape[0]) % 9

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(clips), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * clips.shape[0] / (time.perf_counter() - start)


def frame_paths_from_layout(layout: str, cache: TrialCache) -> Optional[list]:
    """Return per-trial frame file lists in cache order (None if the layout does not match)."""
    from pitch_predictor.data.layout import scan_dataset
    records = {rec.trial_id: rec for rec in scan_dataset(layout)}
    ids = getattr(cache, 'trial_ids', None)
    if ids is None or not all(str(i) in records for i in ids):
        return None
    return [list(records[str(i)].frame_paths) for i in ids]


def main() -> Dict[str, float]:
    """Measure both pipelines once and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--data', required=True, help='TrialCache folder')
    parser.add_argument('--layout', help='dataset layout the cache was built from (image files)')
    parser.add_argument('--sampling', type=int, default=2)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--batches', type=int, default=12)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--train-steps', type=int, default=4,
                        help='fast 2D-ConvGRU training steps timed for scale')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads of the main process (the DataLoader workers use 1); '
                        'on a busy 2-core machine more threads spin-wait')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = TrialCache(args.data)
    preprocess = (fast_preprocess() if cache.preprocess.stored_size == 120
                  else paper_preprocess())
    trials, _ = paper_split(cache)
    trials = np.asarray(trials)
    need = args.batch_size * (args.batches + 2)
    trials = np.resize(trials, need)  # repeat trials if the set is small
    generator = torch.Generator().manual_seed(0)

    # Exactly what training does on a CPU: workers read the memory map and augment whole
    # batches (ClipCollate); with no workers the main process augments.
    ours_loader = DataLoader(ClipDataset(args.data, trials, args.sampling),
                             batch_size=args.batch_size, num_workers=args.workers,
                             shuffle=True,
                             collate_fn=ClipCollate(preprocess, 0, augment=args.workers > 0))
    ours = clips_per_second(
        ours_loader,
        (lambda c: c) if args.workers > 0 else (lambda c: train_transform(c, preprocess,
                                                                          generator)),
        args.batches)

    paths = None
    if args.layout and not Path(args.layout).is_dir():
        print(f'{args.layout} does not exist: the naive pipeline reads the cached crops')
    elif args.layout:
        paths = frame_paths_from_layout(args.layout, cache)
    naive_loader = DataLoader(
        NaiveClipDataset(args.data, trials, args.sampling, preprocess, paths),
        batch_size=args.batch_size, num_workers=args.workers, shuffle=True)
    naive = clips_per_second(naive_loader, lambda c: c, args.batches)
    sample = next(iter(ours_loader))[0]
    if args.workers == 0:
        sample = train_transform(sample, preprocess, generator)
    training = training_clips_per_second(sample, args.train_steps)
    report = {'ours_clips_per_s': ours, 'naive_clips_per_s': naive, 'ratio': ours / naive,
              'training_clips_per_s': training, 'ours_over_training': ours / training,
              'naive_over_training': naive / training,
              'naive_reads': 'image files' if paths else 'cached crops',
              'batch_size': args.batch_size, 'workers': args.workers,
              'sampling': args.sampling, 'output_size': preprocess.output_size,
              'threads': torch.get_num_threads()}
    print(json.dumps(report, indent=2))
    print(f'input pipeline: ours {ours:.1f} clips/s, naive {naive:.1f} clips/s, '
          f'ratio {ours / naive:.1f}x')
    print(f'training step (fast 2D-ConvGRU) consumes {training:.1f} clips/s: ours delivers '
          f'{ours / training:.2f}x that, naive {naive / training:.2f}x (< 1: starved)')
    source = report['naive_reads']
    print(f'ratio: input pipeline clips/s, ours / naive PIL reading {source} = '
          f'{ours / naive:.2f}x')
    print(f'ratio: ours clips/s / fast 2D-ConvGRU training step clips/s = '
          f'{ours / training:.2f}x')
    return report


if __name__ == '__main__':
    main()

"""
``pitch-sim``: generate the synthetic dataset, build training caches, write rosbag2 files.

Defaults put everything under ``data/synthetic/`` (relative to the current folder; run
from the repository root, where ``/data/`` is git-ignored)::

    pitch-sim layout                      # -> data/synthetic/layout (6 x 9 x 10 hits)
                                          #    and data/synthetic/layout_miss (the misses)
    pitch-sim cache --preprocess fast     # -> data/synthetic/cache_fast (120 px crops)
    pitch-sim cache --preprocess paper    # -> data/synthetic/cache_paper (240 px crops)
    pitch-sim cache --source data/synthetic/layout_miss --out data/synthetic/cache_fast_miss
    pitch-sim cache --crop skeleton --workers 1   # -> data/synthetic/cache_fast_skelcrop
    pitch-sim cache --stored-size 170             # -> data/synthetic/cache_fast_170px
    pitch-sim bag --out data/synthetic/bags/stream.mcap --trials-per-block 2 --seed 123
    pitch-sim bag --miss --out data/synthetic/bags/miss.mcap   # the misses of that plan

The protocol is [13]'s (docs/data.md): only throws that hit the intended block are
dataset trials; throws into another block form the miss set, in the recorder's layout
(``intentNN/<pitcher>/<trial>/actualMM``).
"""

import argparse
from dataclasses import replace
import json
from pathlib import Path
import sys
import time
from typing import List, Optional

DEFAULT_ROOT = Path('data') / 'synthetic'


def _sim_config(args: argparse.Namespace):
    from pitch_predictor.sim.generator import SimConfig
    cfg = SimConfig(participants=args.participants, trials_per_block=args.trials,
                    seed=args.seed)
    if getattr(args, 'width', None):
        cfg = replace(cfg, width=args.width)
    if getattr(args, 'height', None):
        cfg = replace(cfg, height=args.height)
    return cfg


def _add_sim_args(parser: argparse.ArgumentParser, trials_flag: str = '--trials') -> None:
    parser.add_argument('--participants', type=int, default=6, help='number of pitchers')
    parser.add_argument(trials_flag, dest='trials', type=int, default=10,
                        help='trials per participant and block')
    parser.add_argument('--seed', type=int, default=0, help='dataset seed (deterministic)')
    parser.add_argument('--workers', type=int, default=2, help='render processes')


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def _fresh_folder(out: Path, force: bool) -> bool:
    if out.exists() and any(out.iterdir()) and not force:
        print(f'error: {out} exists and is not empty (use --force to overwrite)',
              file=sys.stderr)
        return False
    return True


def cmd_layout(args: argparse.Namespace) -> int:
    """Generate the dataset (hits) and its miss set into the real layout."""
    import shutil

    from pitch_predictor.data.layout import write_meta, write_trial
    from pitch_predictor.sim.generator import config_dict, generate_trials, plan_dataset

    cfg = _sim_config(args)
    out = Path(args.out)
    miss_out = None if args.no_miss else Path(args.miss_out or f'{out}_miss')
    folders = [out] + ([miss_out] if miss_out else [])
    if not all(_fresh_folder(f, args.force) for f in folders):
        return 2
    for folder in folders:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    t0 = time.time()
    hits, misses = plan_dataset(cfg, include_misses=True)
    if miss_out is None:
        misses = []
    meta: dict = {out: {}, miss_out: {}}
    specs = list(hits) + list(misses)
    for k, trial in enumerate(generate_trials(cfg, specs, workers=args.workers,
                                              desc='pitch-sim layout')):
        is_miss = k >= len(hits)
        write_trial(miss_out if is_miss else out, trial.trial_id, trial.block, trial.joints,
                    jpegs=trial.jpegs, image_format=args.format,
                    intended_block=trial.spec.intended_block if is_miss else None,
                    participant=trial.participant)
        meta[miss_out if is_miss else out][trial.trial_id] = trial.meta()
    for folder in folders:
        write_meta(folder, {'generator': 'pitchsim', 'config': config_dict(cfg),
                            'miss_set': folder == miss_out, 'trials': meta[folder]})
    elapsed = time.time() - t0
    size = sum(_dir_size(f) for f in folders)
    print(f'wrote {len(hits)} trials to {out}'
          + (f' and {len(misses)} misses to {miss_out}' if miss_out else '')
          + f' in {elapsed:.1f} s, {size / 1e6:.0f} MB')
    return 0


def resized_preprocess(preprocess, stored_size: int):
    """
    Return ``preprocess`` with crops stored at ``stored_size`` and its matching input size.

    The network input keeps the preset's input / stored ratio, rounded to a multiple of
    16 pixels (the presets: 224 of 240, 112 of 120; 170 stored gives 160), so the cache's
    meta records the input size a model trained on it takes.
    """
    ratio = preprocess.output_size / preprocess.stored_size
    output = max(16, 16 * round(stored_size * ratio / 16))
    return replace(preprocess, stored_size=stored_size, output_size=min(output, stored_size))


def cmd_cache(args: argparse.Namespace) -> int:
    """Build a memory-mapped training cache from a layout or straight from the generator."""
    from pitch_predictor.data.cache import build_cache, CacheError
    from pitch_predictor.data.layout import DatasetError, layout_source, scan_dataset
    from pitch_predictor.models.preprocessing import (
        CameraIntrinsics, fast_preprocess, paper_preprocess)
    from pitch_predictor.sim.generator import config_dict, planned_trials

    preprocess = fast_preprocess() if args.preprocess == 'fast' else paper_preprocess()
    preprocess = replace(preprocess, crop_mode=args.crop)
    name = f'cache_{args.preprocess}'
    if args.stored_size:
        preprocess = resized_preprocess(preprocess, args.stored_size)
        name += f'_{args.stored_size}px'
    if args.crop == 'skeleton':
        name += '_skelcrop'
    intrinsics = None
    if args.intrinsics:
        try:
            fx, fy, cx, cy = (float(v) for v in args.intrinsics.split(','))
        except ValueError:
            print(f'error: --intrinsics wants FX,FY,CX,CY (pixels), got {args.intrinsics!r}',
                  file=sys.stderr)
            return 2
        intrinsics = CameraIntrinsics(fx, fy, cx, cy)
    out = Path(args.out or DEFAULT_ROOT / name)
    t0 = time.time()
    if args.generate:
        cfg = _sim_config(args)
        trials = planned_trials(cfg, misses=args.miss)
        source = {'kind': 'generator', 'pitchsim': config_dict(cfg)}
    try:
        if not args.generate:
            trials, source = scan_dataset(args.source), layout_source(args.source)
        cache = build_cache(trials, out, preprocess, source=source, workers=args.workers,
                            intrinsics=intrinsics)
    except (CacheError, DatasetError) as err:  # a full disk, a broken layout: no traceback
        print(f'error: {err}', file=sys.stderr)
        return 1
    found = cache.start_found.mean() if len(cache) else 0.0
    summary = {'trials': len(cache), 'folder': str(out), 'seconds': round(time.time() - t0, 1),
               'megabytes': round(_dir_size(out) / 1e6), 'start_found': float(found),
               'misses': int((cache.blocks != cache.intended).sum()),
               'crop': cache.meta['crop']}
    if (cache.true_start >= 0).any():
        import numpy as np
        err = np.abs(np.asarray(cache.start) - np.asarray(cache.true_start))
        summary['start_within_3_frames'] = float((err <= 3).mean())
    print(json.dumps(summary))
    return 0


def cmd_bag(args: argparse.Namespace) -> int:
    """Write several generated trials back to back as one rosbag2 (mcap) recording."""
    from pitch_predictor.data.bag import write_recording
    from pitch_predictor.sim.generator import generate_trials, plan_dataset, SimConfig

    cfg = SimConfig(participants=args.participants, trials_per_block=args.trials,
                    seed=args.seed)
    # One continuous recording: one session (room, light, camera) per participant, the
    # participants one after the other, each one's trials in a shuffled order. --miss:
    # the throws of that plan that went into another block than the one aimed at.
    planned = plan_dataset(cfg, include_misses=True)[1 if args.miss else 0]
    specs = [replace(s, session=0) for s in planned]
    if args.shuffle:
        import numpy as np
        rng = np.random.default_rng(args.seed)
        ordered = []
        for p in range(cfg.participants):
            own = [s for s in specs if s.participant_index == p]
            ordered.extend(own[i] for i in rng.permutation(len(own)))
        specs = ordered
    trials = generate_trials(cfg, specs, workers=args.workers, width=args.width,
                             height=args.height, desc='pitch-sim bag')
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    records = write_recording(out, trials, compressed=args.compressed,
                              gap_frames=args.gap_frames, start_time_ns=args.start_time_ns,
                              seed=args.seed, overwrite=True,
                              walk_back_frames=args.walk_back_frames)
    size = _dir_size(out) if out.is_dir() else out.stat().st_size
    print(f'wrote {len(records)} trials to {out} ({size / 1e6:.0f} MB)')
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the ``pitch-sim`` argument parser."""
    parser = argparse.ArgumentParser(prog='pitch-sim', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)

    layout = sub.add_parser('layout', help='generate the dataset in the real layout')
    layout.add_argument('--out', default=str(DEFAULT_ROOT / 'layout'))
    _add_sim_args(layout)
    layout.add_argument('--format', choices=('jpg', 'png'), default='jpg',
                        help='frame files (jpg: the generator JPEG bytes as they are)')
    layout.add_argument('--width', type=int, default=None,
                        help="frame width (default 640, the recorder's; 1920 native)")
    layout.add_argument('--height', type=int, default=None,
                        help="frame height (default 360, the recorder's; 1080 native)")
    layout.add_argument('--miss-out', default=None,
                        help='miss set folder (default: <out>_miss)')
    layout.add_argument('--no-miss', action='store_true', help='do not write the miss set')
    layout.add_argument('--force', action='store_true', help='overwrite --out (and the miss set)')
    layout.set_defaults(func=cmd_layout)

    cache = sub.add_parser('cache', help='build the memory-mapped training cache')
    cache.add_argument('--source', default=str(DEFAULT_ROOT / 'layout'),
                       help='layout folder (ignored with --generate)')
    cache.add_argument('--out', default=None,
                       help='cache folder (default data/synthetic/cache_<preprocess>)')
    cache.add_argument('--preprocess', choices=('fast', 'paper'), default='fast')
    cache.add_argument('--crop', choices=('centre', 'skeleton'), default='centre',
                       help="centre: the paper's fixed centre square; skeleton: one square "
                            'per trial around the pitcher, from the rest pose projected into '
                            'the colour image (centre square when there is no skeleton)')
    cache.add_argument('--intrinsics', default=None, metavar='FX,FY,CX,CY',
                       help="colour camera intrinsics in pixels at the frames' size, for "
                            '--crop skeleton (default: the Kinect V2 colour camera, nominal)')
    cache.add_argument('--stored-size', type=int, default=None,
                       help="side the crops are stored at (default: the preset's, 120 fast, "
                            '240 paper)')
    cache.add_argument('--generate', action='store_true',
                       help='render the trials straight from the generator')
    cache.add_argument('--miss', action='store_true',
                       help='with --generate: the miss set instead of the hits')
    _add_sim_args(cache)
    cache.set_defaults(func=cmd_cache)

    bag = sub.add_parser('bag', help='write a rosbag2 (mcap) recording of generated trials')
    bag.add_argument('--out', default=str(DEFAULT_ROOT / 'bags' / 'stream.mcap'))
    _add_sim_args(bag, trials_flag='--trials-per-block')
    bag.set_defaults(participants=1, trials=2, seed=123)
    bag.add_argument('--compressed', action='store_true',
                     help='images as sensor_msgs/CompressedImage (jpeg) instead of raw bgr8')
    bag.add_argument('--width', type=int, default=960)
    bag.add_argument('--height', type=int, default=540)
    bag.add_argument('--gap-frames', type=int, default=20,
                     help='still frames before each trial (the pitcher stands at rest)')
    bag.add_argument('--walk-back-frames', type=int, default=None,
                     help='frames of the walk back to the rest spot after each trial '
                          '(default 40; 0: none)')
    bag.add_argument('--miss', action='store_true',
                     help='record the misses of the plan (intended != actual block)')
    bag.add_argument('--start-time-ns', type=int, default=1_767_225_600_000_000_000,
                     help='stamp of the first frame (default 2026-01-01T00:00:00Z)')
    bag.add_argument('--no-shuffle', dest='shuffle', action='store_false',
                     help='keep trials ordered by block (default: shuffled by --seed)')
    bag.set_defaults(func=cmd_bag)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``pitch-sim``."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == '__main__':
    sys.exit(main())

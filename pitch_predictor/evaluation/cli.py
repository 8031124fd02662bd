"""
``pitch-eval``: score the predictor node on a recorded rosbag2 file.

Modes:
  dds      replay the bag into ``predictor_node`` over DDS (the node is started here
           with ``use_sim_time`` unless ``--external-node``), publishing ``/clock``;
  listen   only listen to the node's outputs, beside an external ``ros2 bag play``;
  offline  feed the bag's messages through the node's processing core without DDS
           (deterministic; gives the same predictions as ``dds``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
from typing import Optional, Sequence

from pitch_predictor.evaluation.run import EvalOptions, evaluate, EvaluationError, MODES
from pitch_predictor.evaluation.scoring import format_report, per_action_markdown

MAX_PRINTED_ACTIONS = 60


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``pitch-eval``."""
    p = argparse.ArgumentParser(
        prog='pitch-eval', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('bag', type=Path, help='rosbag2 recording (mcap or sqlite3 directory/file)')
    p.add_argument('--model', type=Path, default=None,
                   help='checkpoint (default: the shipped model)')
    p.add_argument('--mode', choices=MODES, default='dds', help='default: dds')
    p.add_argument('--params-file', type=Path, default=None,
                   help="node parameter YAML (default: the package's config/predictor.yaml)")
    p.add_argument('--param', action='append', default=[], metavar='NAME:=VALUE',
                   help='extra node parameter (repeatable), e.g. device:=cpu')
    speed = p.add_mutually_exclusive_group()
    speed.add_argument('--rate', type=float, default=1.0,
                       help='replay speed relative to the recording (default 1.0)')
    speed.add_argument('--as-fast-as-possible', action='store_true',
                       help='publish without pacing (the node may drop frames)')
    p.add_argument('--external-node', action='store_true',
                   help='dds mode: a predictor_node is already running; do not start one')
    p.add_argument('--out', type=Path, default=None,
                   help='output directory (default: out/eval/<bag>-<mode>)')
    p.add_argument('--match-timeout', type=float, default=120.0,
                   help='seconds to wait for the node to come up and match topics')
    p.add_argument('--drain-timeout', type=float, default=15.0,
                   help='seconds without a new prediction after which collection ends')
    p.add_argument('--duration', type=float, default=None,
                   help='listen mode: stop after this many seconds')
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    return p


def frames_lost(stats: dict) -> Optional[tuple]:
    """Return (received, published) when the node's diagnostics show lost frames."""
    diagnostics = stats.get('node_diagnostics') or {}
    published = stats.get('frames_published')
    try:
        received = int(diagnostics['frames_received'])
    except (KeyError, ValueError):
        return None
    return (received, published) if published and received < published else None


def windows_skipped(stats: dict) -> int:
    """Return how many windows the node skipped for a missing skeleton (joints models)."""
    counters = stats.get('core_counters') or stats.get('node_diagnostics') or {}
    try:
        return int(float(counters.get('windows_skipped_no_skeleton', 0)))
    except (TypeError, ValueError):
        return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``pitch-eval``; return the process exit code."""
    args = build_parser().parse_args(argv)
    if args.rate is not None and args.rate <= 0:
        print('pitch-eval: --rate must be > 0 (use --as-fast-as-possible)', file=sys.stderr)
        return 2
    opts = EvalOptions(
        bag=args.bag, mode=args.mode, model=args.model, params_file=args.params_file,
        rate=None if args.as_fast_as_possible else args.rate, out_dir=args.out,
        external_node=args.external_node, node_params=list(args.param),
        match_timeout_s=args.match_timeout, drain_timeout_s=args.drain_timeout,
        listen_duration_s=args.duration, progress=not args.no_progress)
    try:
        result = evaluate(opts)
    except (EvaluationError, FileNotFoundError) as exc:
        print(f'pitch-eval: {exc}', file=sys.stderr)
        return 1
    report = result.report
    if len(report.actions) <= MAX_PRINTED_ACTIONS:
        print(per_action_markdown(report))
    print(format_report(report))
    skipped = windows_skipped(result.stats)
    if skipped:
        print(f'note: {skipped} window(s) got no prediction because the skeleton was missing '
              'for too much of them (max_missing_skeleton_fraction); a trial without a '
              'prediction counts as wrong')
    lost = frames_lost(result.stats)
    if lost:
        print(f'WARNING: the node received {lost[0]} of {lost[1]} published frames; '
              'predictions are not comparable (replay slower: --rate)')
    print(f'wall time {result.wall_time_s:.1f} s; files in '
          f'{Path(result.files["summary"]).parent}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

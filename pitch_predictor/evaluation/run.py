"""
One evaluation of one recording: collect predictions (DDS, listen or offline) and score.

``evaluate(EvalOptions(...))`` is what ``pitch-eval`` and the demo call. ROS is imported
only for the ``dds`` and ``listen`` modes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import random
import time
from typing import Optional

from pitch_predictor.evaluation.scoring import (
    EvaluationReport, ObservedPrediction, score, truth_from_records, write_report)

MODES = ('dds', 'offline', 'listen')


class EvaluationError(RuntimeError):
    """The evaluation could not run (bag unreadable, model missing, node failed...)."""


@dataclass
class EvalOptions:
    """Everything one evaluation needs (the CLI's arguments)."""

    bag: Path
    mode: str = 'dds'
    model: Optional[Path] = None  # None: the shipped model
    params_file: Optional[Path] = None  # None: the package's default node config
    rate: Optional[float] = 1.0  # None: as fast as possible
    out_dir: Optional[Path] = None
    external_node: bool = False
    node_params: list = field(default_factory=list)  # extra 'name:=value' for the node
    match_timeout_s: float = 120.0
    drain_timeout_s: float = 15.0
    listen_duration_s: Optional[float] = None
    progress: bool = True


@dataclass
class EvalResult:
    """Predictions, their score and the files written."""

    report: EvaluationReport
    predictions: list
    stats: dict
    files: dict
    wall_time_s: float


def bag_topics(bag: Path) -> dict:
    """Return ``{topic: message type}`` of a rosbag2 recording (mcap or sqlite3)."""
    from rosbags.highlevel import AnyReader

    try:
        with AnyReader([Path(bag)]) as reader:
            return {c.topic: c.msgtype for c in reader.connections}
    except Exception as exc:  # rosbags raises several unrelated types for bad files
        raise EvaluationError(f'cannot read recording {bag}: {exc}') from exc


def default_model_path() -> Path:
    """Return the shipped model's path (which may be missing in a development tree)."""
    from pitch_predictor.shipped_model import default_model_path as shipped

    return shipped()


def missing_model_message(path: Path) -> str:
    """Explain what to do when the model file is missing."""
    return (f'model file {path} does not exist. The shipped model comes with the '
            'package (a development checkout gets it from training/, see the README, '
            '"Training"); or pass --model PATH to a checkpoint of your own.')


def default_params_file() -> Optional[Path]:
    """Return the node's default parameter file (config/predictor.yaml), if found."""
    from pitch_predictor.runtime.node_params import default_params_file as node_default

    return node_default()


# Private DDS domains the evaluator draws from when none is set (0 is the default one).
PRIVATE_DOMAIN_IDS = (50, 101)


def isolate_dds_domain() -> str:
    """
    Give this process (and the node it starts) a private DDS domain on localhost.

    Used when the evaluator starts its own node and the user set no ``ROS_DOMAIN_ID``:
    a replay must not feed (or be fed by) a robot's live nodes on the default domain.
    """
    if 'ROS_DOMAIN_ID' not in os.environ:
        # 0..101 only: higher IDs map to UDP ports in Linux's ephemeral range (32768+),
        # where another socket can take them (intermittent discovery failures).
        os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(
            PRIVATE_DOMAIN_IDS[0], PRIVATE_DOMAIN_IDS[1]))
        os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return os.environ['ROS_DOMAIN_ID']


def check_node_topics(bag: Path, topics: dict, params_file: Optional[Path],
                      overrides: list) -> None:
    """Refuse a recording that lacks the image/skeleton topics the node will subscribe to."""
    from pitch_predictor.runtime.node_params import load_node_settings, ParameterError

    try:
        settings = load_node_settings(params_file, overrides)
    except ParameterError as exc:
        raise EvaluationError(f'node parameters: {exc}') from exc
    for kind, topic in (('image', settings.image_topic), ('skeleton', settings.skeleton_topic)):
        if topic not in topics:
            raise EvaluationError(
                f'recording {bag} has no {kind} topic {topic} (the node subscribes to it '
                f'with these parameters); its topics: {", ".join(sorted(topics))}')


def _collect_dds(opts: EvalOptions, model: Path, last_start_ns: int, out_dir: Path):
    from pitch_predictor.data.bag import read_recording
    from pitch_predictor.evaluation import replay

    topics = bag_topics(opts.bag)
    messages = read_recording(opts.bag)
    common = {'rate': opts.rate, 'last_start_ns': last_start_ns,
              'match_timeout_s': opts.match_timeout_s,
              'drain_timeout_s': opts.drain_timeout_s, 'progress': opts.progress}
    if opts.external_node:
        try:
            # /clock is published all the same; an external node need not use it.
            return replay.replay_recording(messages, topics, wait_for_clock=False, **common)
        except replay.ReplayError as exc:
            raise EvaluationError(str(exc)) from exc
    params = opts.params_file or default_params_file()
    check_node_topics(opts.bag, topics, params, opts.node_params)
    isolate_dds_domain()
    args = replay.node_ros_args(params_file=params, model_path=model,
                                extra=opts.node_params)
    node = replay.NodeProcess(args, out_dir / 'node.log')
    try:
        return replay.replay_recording(messages, topics, alive=node.problem, **common)
    except replay.ReplayError as exc:
        raise EvaluationError(str(exc)) from exc
    finally:
        code = node.stop()
        if code not in (0, None, -2):
            print(f'note: predictor_node exited with code {code}; log: {node.log_path}')


def _collect_listen(opts: EvalOptions, last_start_ns: int):
    from pitch_predictor.evaluation import replay

    return replay.listen(last_start_ns=last_start_ns, duration_s=opts.listen_duration_s,
                         idle_timeout_s=opts.drain_timeout_s if opts.listen_duration_s is None
                         else None, progress=opts.progress)


def evaluate(opts: EvalOptions) -> EvalResult:
    """Run one evaluation: collect the predictions, score them, write the report files."""
    if opts.mode not in MODES:
        raise EvaluationError(f'mode must be one of {MODES}, got {opts.mode!r}')
    bag = Path(opts.bag)
    if not bag.exists():
        raise EvaluationError(f'recording {bag} does not exist')
    from pitch_predictor.data.bag import BagError, read_ground_truth

    try:
        truths = truth_from_records(read_ground_truth(bag))
    except BagError as exc:
        raise EvaluationError(str(exc)) from exc
    if not truths:
        raise EvaluationError(f'recording {bag} has no ground truth (no /pitch/ground_truth '
                              'messages): nothing to score against')
    model = Path(opts.model) if opts.model else default_model_path()
    if opts.mode != 'listen' and not (opts.mode == 'dds' and opts.external_node) \
            and not model.exists():
        raise EvaluationError(missing_model_message(model))
    out_dir = Path(opts.out_dir or Path('out') / 'eval' / f'{bag.stem}-{opts.mode}')
    out_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    if opts.mode == 'offline':
        from pitch_predictor.models.checkpoint import CheckpointError
        from pitch_predictor.evaluation.offline import OfflineError, run_offline

        try:
            predictions, stats = run_offline(bag, model, params_file=opts.params_file,
                                             node_params_overrides=opts.node_params,
                                             progress=opts.progress)
        except (OfflineError, CheckpointError) as exc:
            raise EvaluationError(str(exc)) from exc
    elif opts.mode == 'dds':
        predictions, stats = _collect_dds(opts, model, truths[-1].first_stamp_ns, out_dir)
    else:
        predictions, stats = _collect_listen(opts, truths[-1].first_stamp_ns)
    stats_dict = stats if isinstance(stats, dict) else stats.to_json()
    wall = time.perf_counter() - t0

    meta = {'mode': opts.mode, 'bag': str(bag), 'model': str(model),
            'rate': opts.rate, 'wall_time_s': wall, **stats_dict}
    report = score(predictions, truths, meta=meta)
    files = write_report(report, out_dir, predictions)
    (out_dir / 'replay_stats.json').write_text(json.dumps(stats_dict, indent=2,
                                                          default=str) + '\n')
    return EvalResult(report, list(predictions), stats_dict, files, wall)


def predictions_agree(a: list[ObservedPrediction], b: list[ObservedPrediction],
                      atol: float = 1e-5) -> Optional[str]:
    """Return None when two prediction lists agree (start, block, probabilities), else why."""
    if len(a) != len(b):
        return f'{len(a)} predictions against {len(b)}'
    for i, (p, q) in enumerate(zip(a, b)):
        if p.start_stamp_ns != q.start_stamp_ns or p.block != q.block:
            return (f'prediction {i}: start {p.start_stamp_ns} block {p.block} against '
                    f'start {q.start_stamp_ns} block {q.block}')
        if len(p.probabilities) != len(q.probabilities) or any(
                abs(x - y) > atol for x, y in zip(p.probabilities, q.probabilities)):
            return f'prediction {i}: probabilities differ by more than {atol}'
    return None

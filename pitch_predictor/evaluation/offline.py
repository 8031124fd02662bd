"""
Offline evaluation: the recording's messages through the node's own core, without DDS.

Exactly the node's processing: the same parameter file read the same way, the same
message conversion (``runtime.messages``) and the same :class:`PredictorCore`, fed in
the recording's order with each message's header stamp. Decisions run inline, so the
result is deterministic and needs no ROS. Models that take joints (two-stream,
joints-only) get the same window joints and the same skeleton-gap policy as in the node
(``stats['core_counters']`` holds ``windows_skipped_no_skeleton`` and
``decisions_with_filled_skeleton``). The stream is not flushed at the end (the node
never flushes either), so both modes see the same frames.
"""

from __future__ import annotations

from pathlib import Path
import time
from typing import Optional, Sequence

from pitch_predictor.evaluation.scoring import ObservedPrediction
from pitch_predictor.runtime import messages as conversion
from pitch_predictor.runtime import node_params
from pitch_predictor.runtime.core import PredictorCore
from tqdm import tqdm


class OfflineError(ValueError):
    """The recording or the node parameters do not allow an offline run."""


def run_offline(bag: Path, model: Path, *, params_file: Optional[Path] = None,
                node_params_overrides: Sequence[str] = (), device: Optional[str] = None,
                progress: bool = True) -> tuple[list[ObservedPrediction], dict]:
    """
    Feed ``bag`` through a PredictorCore configured like the node; return finals + stats.

    ``params_file``/``node_params_overrides`` ('name:=value') are the node's parameters
    (default: the package's config/predictor.yaml), so topics, image transport, skeleton
    type and every core setting match the node's. ``device`` overrides the node's
    ``device`` parameter.
    """
    from pitch_predictor.data.bag import read_recording

    try:
        settings = node_params.load_node_settings(
            params_file or node_params.default_params_file(), list(node_params_overrides))
    except node_params.ParameterError as exc:
        raise OfflineError(f'node parameters: {exc}') from exc
    core = PredictorCore(Path(model), settings.core, device=device or settings.device,
                         notify=lambda key, message: None,
                         backend=settings.inference_backend)
    # The node subscribes to these names in the root namespace (the evaluator starts it
    # without remappings), so the offline run takes exactly the same topics.
    image_topic, skeleton_topic = settings.image_topic, settings.skeleton_topic
    to_pixels = (conversion.compressed_msg_to_pixels if settings.compressed
                 else conversion.image_msg_to_pixels)
    to_joints = (conversion.marker_array_to_joints if settings.skeleton_type == 'marker_array'
                 else conversion.pose_array_to_joints)

    predictions: list[ObservedPrediction] = []
    t0 = time.perf_counter()
    for topic, _, msg in tqdm(read_recording(bag), desc='offline', unit='msg',
                              disable=None if progress else True, leave=False):
        if topic == image_topic:
            made = core.ingest_image_msg(msg, to_pixels)[1]
        elif topic == skeleton_topic:
            made = core.ingest_skeleton_msg(msg, to_joints)
        else:
            continue
        predictions += [
            ObservedPrediction(p.start_stamp_ns, p.block,
                               tuple(float(v) for v in p.probabilities), p.decision_latency_s)
            for p in made if not p.early]
    stats = {
        'wall_time_s': time.perf_counter() - t0,
        'image_topic': image_topic,
        'skeleton_topic': skeleton_topic,
        'core_counters': dict(core.counters),
        'model_name': core.model_name,
        'sampling_method': core.sampling_method,
        'device': str(core.device),
    }
    return predictions, stats

"""
PredictorCore: the ROS-free heart of the live predictor, shared by node and evaluator.

Per arriving frame (once): :mod:`~pitch_predictor.runtime.stream_stamps` checks its
stamp, :mod:`~pitch_predictor.runtime.frame_encoding` crops it and computes the start
detector's signature and the model's per-frame encoding, and
:class:`~pitch_predictor.runtime.pairing.StampPairer` pairs it with its skeleton. Each
paired frame gets its joints from :mod:`~pitch_predictor.runtime.skeleton_hold` and
steps :mod:`~pitch_predictor.runtime.pitch_window` (start detector, 40-frame window).
When a window is complete, the Table II test clips of the configured sampling method
run through ``model.forward_encoded`` in one batch
(:mod:`~pitch_predictor.runtime.inference`), and the prediction is the mean calibrated
softmax over the clips (:mod:`pitch_predictor.models.decision`, the checkpoint's temperature),
with the pitcher's row offsets when they are set (``row_offset_top`` / ``_bottom``).

Two-stream models (``input_kind == 'rgb+joints'``) get the joints paired with each
window frame beside its cached features; joints-only models (``'joints'``) get them as
their only input. For every model that takes joints, a frame without a skeleton holds
the last one for ``skeleton_hold_frames`` frames and then gets NaN joints (the model
masks them), and a window with more than ``max_missing_skeleton_fraction`` of its frames
without their own skeleton is not decided (docs/node.md, "Skeleton gaps").

Decisions are :class:`DecisionJob` objects holding everything they need, so they can
run on another thread: pass ``submit`` to hand them to a worker (the node does), or
leave it None and they run inline and ``ingest_*`` return the predictions (offline
evaluation does). The core itself is not thread-safe: feed it from one thread.

Bad input never raises: it is counted in :attr:`PredictorCore.counters` and reported
through the ``notify(key, message)`` callback (the node throttles its log by key).
"""

from dataclasses import fields, replace
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from pitch_predictor.kinect import NUM_JOINTS, WINDOW
from pitch_predictor.models.checkpoint import (
    build_model_from_checkpoint, Checkpoint, load_checkpoint, PathLike)
from pitch_predictor.models.decision import (
    apply_row_offset, checkpoint_temperature, row_offset_vector)
from pitch_predictor.models.device import select_device
from pitch_predictor.models.preprocessing import PreprocessError, test_transform
from pitch_predictor.models.sampling import test_clip_indices
from pitch_predictor.runtime.core_statistics import CoreStatistics
from pitch_predictor.runtime.frame_encoding import FrameEncoder
from pitch_predictor.runtime.inference import (
    ClipRunner, early_probabilities, final_probabilities)
from pitch_predictor.runtime.jobs import DecisionJob, Prediction
from pitch_predictor.runtime.messages import (
    MessageError, Pixels, skeleton_stamp_ns, stamp_to_ns)
from pitch_predictor.runtime.onnx_backend import onnxruntime_usable
from pitch_predictor.runtime.pairing import PairedSample, StampPairer
from pitch_predictor.runtime.pitch_window import DueDecision, PHASES, PitchWindows
from pitch_predictor.runtime.settings import (
    CoreConfig, CoreConfigError, DECISION_BACKENDS, INPUT_KINDS)
from pitch_predictor.runtime.skeleton_hold import SkeletonHold
from pitch_predictor.runtime.stream_stamps import FrameStamps, STAMP_BACKWARDS
import torch

__all__ = ['CoreConfig', 'CoreConfigError', 'DecisionJob', 'INPUT_KINDS', 'PHASES',
           'Prediction', 'PredictorCore']

_LOG = logging.getLogger(__name__)

# The joints of a frame without a skeleton, as models that take joints receive them.
_NO_JOINTS = np.full((NUM_JOINTS, 3), np.nan, dtype=np.float32)


def _log_notify(key: str, message: str) -> None:
    _LOG.info('%s: %s', key, message)


class PredictorCore:
    """
    Turn a stream of stamped frames and skeletons into pitch predictions.

    ``checkpoint``: a :class:`Checkpoint` or a path to one. ``config``: a
    :class:`CoreConfig`. ``device``: 'auto', 'cpu', 'cuda', 'cuda:N' or a device.
    ``model``: an already built model (skips building from the checkpoint).
    ``submit``: where decision jobs go (None: decide inline, return predictions).
    ``notify``: ``(key, message)`` for resets and rejections (throttle by key).
    ``backend``: how the model runs, one of ``DECISION_BACKENDS``.
    """

    def __init__(self, checkpoint: Union[Checkpoint, PathLike],
                 config: Optional[CoreConfig] = None, *,
                 device: Union[str, torch.device] = 'auto',
                 model: Optional[torch.nn.Module] = None,
                 submit: Optional[Callable[[DecisionJob], None]] = None,
                 notify: Optional[Callable[[str, str], None]] = None,
                 backend: str = 'onnxruntime') -> None:
        if backend not in DECISION_BACKENDS:
            raise CoreConfigError(f'backend {backend!r} must be one of {DECISION_BACKENDS}')
        self.device = select_device(device) if isinstance(device, str) else torch.device(device)
        if backend == 'onnxruntime' and not onnxruntime_usable(self.device):
            backend = 'torchscript'  # CPU only, and where onnxruntime is installed
        self.checkpoint = (checkpoint if isinstance(checkpoint, Checkpoint)
                           else load_checkpoint(checkpoint))
        self.model = model if model is not None else build_model_from_checkpoint(
            self.checkpoint, self.device)
        self.model.eval()
        self.preprocess = self.checkpoint.preprocess
        self.input_kind = self.model.input_kind
        if self.input_kind not in INPUT_KINDS:
            raise CoreConfigError(f'model {self.checkpoint.model_name} has input_kind '
                                  f'{self.input_kind!r}; the core runs {INPUT_KINDS}')
        if self.preprocess.crop_mode != 'centre':
            raise CoreConfigError(
                f'checkpoint {self.checkpoint.path}: crop_mode {self.preprocess.crop_mode!r} '
                "needs each pitch's crop box, which the node does not compute yet; run a "
                "model trained on centre crops (crop_mode 'centre')")
        self.streamable = bool(self.model.streamable)
        try:
            self.temperature = checkpoint_temperature(self.checkpoint.meta)
        except ValueError as exc:
            raise CoreConfigError(f'checkpoint {self.checkpoint.path}: {exc}') from None
        self.backend = backend
        self._submit = submit
        self._notify = notify or _log_notify
        self.stats = CoreStatistics()
        self.counters = self.stats.counters
        self.last_prediction: Optional[Prediction] = None
        self.last_joints: Optional[np.ndarray] = None
        self.encoder = FrameEncoder(self.model, self.preprocess, self.device,
                                    rgb_features=self.input_kind != 'joints',
                                    backend=backend)
        self._runner = ClipRunner(self.model, self.input_kind, backend, self._notify)
        self._stamps = FrameStamps(self.counters, self._notify, self.count_rejection)
        self._skeletons = SkeletonHold(self.counters, self._notify)
        self._windows = PitchWindows(self.counters, self._notify)
        self._pairer = StampPairer(0)
        self.config = CoreConfig()
        self.configure(config or CoreConfig())
        self._reset_stream()

    # ----------------------------------------------------------------- settings
    @property
    def sampling_method(self) -> int:
        """Table II method used at decision time."""
        return self.config.sampling_method or self.checkpoint.sampling_method

    @property
    def model_name(self) -> str:
        """Registry name of the model in use."""
        return self.checkpoint.model_name

    @property
    def two_stream(self) -> bool:
        """Tell whether the model takes the window's joints beside its RGB features."""
        return self.input_kind == 'rgb+joints'

    @property
    def takes_joints(self) -> bool:
        """Tell whether the model decides from joints (joints-only or two-stream)."""
        return self.input_kind in ('joints', 'rgb+joints')

    @property
    def buffer(self) -> Any:
        """Return the rolling :class:`FeatureBuffer` of stream frames."""
        return self._windows.buffer

    def configure(self, config: CoreConfig) -> None:
        """Apply new settings (validated first); a new detector config re-arms detection."""
        config.validate()
        method = config.sampling_method or self.checkpoint.sampling_method
        try:
            clips = test_clip_indices(method, WINDOW)
        except ValueError as exc:
            raise CoreConfigError(f'sampling method {method}: {exc}') from None
        self.config = replace(config)
        self._clips = clips
        offsets = row_offset_vector(config.row_offset_top, config.row_offset_bottom)
        self._row_offsets = offsets if offsets.any() else None
        self._pairer.tolerance_ns = int(round(config.pair_tolerance_s * 1e9))
        self._pairer.max_pending_frames = config.max_pending_frames
        self._stamps.max_gap_s = config.max_gap_s
        self._skeletons.hold_frames = config.skeleton_hold_frames
        windows = self._windows
        windows.configure_detector(config.detector)
        windows.early_every_frames = config.early_every_frames
        windows.early_estimates = config.early_estimates and self.streamable
        windows.gap_limit = (config.max_missing_skeleton_fraction if self.takes_joints
                             else None)
        if len({len(c) for c in clips}) == 1:
            # Trace now, not at the first pitch (a sampling change re-traces once).
            frame_shape = ((NUM_JOINTS, 3) if self.input_kind == 'joints'
                           else self.encoder.encoded_shape)
            self._runner.warm_up((len(clips), len(clips[0]), *frame_shape), self.device)

    def update(self, **changes: Any) -> None:
        """Change some settings by name, for example ``sampling_method=2``."""
        known = {f.name for f in fields(CoreConfig)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise CoreConfigError(f'unknown settings {unknown}')
        self.configure(replace(self.config, **changes))

    # ------------------------------------------------------------------ state
    @property
    def phase(self) -> str:
        """One of :data:`PHASES`: what the predictor is doing now (for display)."""
        last = self.last_prediction
        return self._windows.phase(last is not None and not last.early)

    @property
    def window_fill(self) -> float:
        """Fraction of the current window received (0 when not recording)."""
        return self._windows.window_fill

    def reset(self, reason: str = 'requested') -> None:
        """Forget the stream (buffer, pairing, detector); counted under ``resets.<reason>``."""
        self.counters[f'resets.{reason}'] += 1
        self._reset_stream()

    def _reset_stream(self) -> None:
        """Forget everything, pending frames and queued skeletons included."""
        self._pairer.reset()
        self._stamps.reset()
        self._reset_state()

    def _reset_state(self) -> None:
        """Start the stream afresh from the next released frame (pairing untouched)."""
        self._windows.reset()
        self._skeletons.reset()

    def count_rejection(self, kind: str, reason: str, detail: str) -> None:
        """Count a rejected ``kind`` ('frame'/'skeleton') message and notify."""
        self.counters[f'{kind}s_rejected.{reason}'] += 1
        self._notify(f'{kind}.{reason}', f'{kind} rejected ({reason}): {detail}')

    # ----------------------------------------------------------------- ingest
    def ingest_frame(self, stamp_ns: int, rgb: np.ndarray) -> List[Prediction]:
        """Take one camera frame (RGB uint8 (H, W, 3)); return predictions made inline."""
        started = time.perf_counter()
        predictions = self.ingest_pixels(stamp_ns, Pixels(rgb))
        self.stats.record_ingest(time.perf_counter() - started)
        return predictions

    def ingest_pixels(self, stamp_ns: int, pixels: Pixels) -> List[Prediction]:
        """Take one camera frame as :class:`Pixels` (RGB or BGR); return inline predictions."""
        self.counters['frames_received'] += 1
        stamp_ns = int(stamp_ns)
        if not self._stamps.accept(stamp_ns):
            return []
        try:
            payload = self.encoder.encode(pixels, self.config.detector)
        except PreprocessError as exc:
            self.count_rejection('frame', 'bad_size', str(exc))
            return []
        reason = self._stamps.stream_break(stamp_ns)
        if reason == STAMP_BACKWARDS:
            self._pairer.restart_frames()
        return self._advance(self._pairer.add_frame(stamp_ns, payload, reason))

    def ingest_joints(self, stamp_ns: int, joints: np.ndarray) -> List[Prediction]:
        """Take one skeleton (float (25, 3), metres); return predictions made inline."""
        self.counters['skeletons_received'] += 1
        joints = np.asarray(joints, dtype=np.float32)
        if joints.shape != (NUM_JOINTS, 3):
            self.count_rejection('skeleton', 'wrong_joint_count',
                                 f'joints shape {joints.shape}, expected ({NUM_JOINTS}, 3)')
            return []
        if not np.isfinite(joints).all():
            self.count_rejection('skeleton', 'non_finite_joints', 'NaN or infinite joints')
            return []
        self.last_joints = joints
        stale = self._pairer.stale_skeletons
        released = self._pairer.add_skeleton(int(stamp_ns), joints)
        if self._pairer.stale_skeletons != stale:
            self.count_rejection('skeleton', 'stale_after_loop',
                                 'skeleton of the previous loop arrived after the frames '
                                 'restarted')
        return self._advance(released)

    def ingest_image_msg(self, msg: Any, to_pixels: Callable[[Any], Pixels]
                         ) -> Tuple[bool, List[Prediction]]:
        """
        Convert an image message with ``to_pixels`` and ingest it (node and evaluator).

        ``to_pixels``: :func:`~pitch_predictor.runtime.messages.image_msg_to_pixels` or
        :func:`~pitch_predictor.runtime.messages.compressed_msg_to_pixels`. Returns
        whether the message was taken (False: rejected and counted) and the predictions
        made inline.
        """
        started = time.perf_counter()
        try:
            pixels = to_pixels(msg)
        except MessageError as exc:
            self.count_rejection('frame', exc.reason, exc.detail)
            return False, []
        predictions = self.ingest_pixels(stamp_to_ns(msg.header.stamp), pixels)
        self.stats.record_ingest(time.perf_counter() - started)
        return True, predictions

    def ingest_skeleton_msg(self, msg: Any,
                            to_joints: Callable[[Any], np.ndarray]) -> List[Prediction]:
        """Convert a skeleton message with ``to_joints`` and ingest it; bad ones are counted."""
        try:
            joints = to_joints(msg)
        except MessageError as exc:
            self.count_rejection('skeleton', exc.reason, exc.detail)
            return []
        return self.ingest_joints(skeleton_stamp_ns(msg), joints)

    def ingest(self, stamp_ns: int, rgb: np.ndarray,
               joints: Optional[np.ndarray]) -> List[Prediction]:
        """Take a frame and its skeleton with the same stamp (offline, already paired)."""
        out = []
        if joints is not None:
            out += self.ingest_joints(stamp_ns, joints)
        return out + self.ingest_frame(stamp_ns, rgb)

    def flush(self) -> List[Prediction]:
        """Release frames still waiting for a skeleton (end of a recording)."""
        return self._advance(self._pairer.flush())

    def _advance(self, samples: Sequence[PairedSample]) -> List[Prediction]:
        predictions: List[Prediction] = []
        for sample in samples:
            for job in self._step(sample):
                if self._submit is not None:
                    self._submit(job)
                else:
                    predictions.append(self.decide(job))
        return predictions

    def _step(self, sample: PairedSample) -> List[DecisionJob]:
        """Add one paired frame to the stream; return the decision jobs it triggers."""
        if sample.reset_reason is not None:
            self.counters[f'resets.{sample.reset_reason}'] += 1
            self._reset_state()
        joints, source = self._skeletons.joints_for(sample.joints)
        features = sample.payload.features
        if self.input_kind == 'joints':
            # Beyond the hold: NaN joints, masked by the model; the window's share of
            # frames without their own skeleton decides whether it is decided at all.
            features = self.encoder.joint_features(_NO_JOINTS if joints is None else joints)
        due = self._windows.add(sample.stamp_ns, features, joints, source,
                                sample.payload.signature, self._skeletons.lost)
        return [self._job(d, sample.payload.arrival_s) for d in due]

    def _job(self, due: DueDecision, arrival_s: float) -> DecisionJob:
        frames = due.frames
        joints = None
        if self.two_stream:
            joints = torch.from_numpy(np.stack(
                [_NO_JOINTS if f.joints is None else f.joints for f in frames])).to(
                    self.device)
        return DecisionJob(
            early=due.early,
            features=torch.stack([f.features for f in frames]),
            clips=self._clips,
            sampling_method=self.sampling_method,
            start_stamp_ns=due.start_stamp_ns,
            last_frame_stamp_ns=frames[-1].stamp_ns,
            fraction_seen=due.seen / WINDOW,
            window_stamps_ns=tuple(f.stamp_ns for f in frames),
            created_s=arrival_s,
            joints=joints,
            skeleton_filled_frames=due.skeleton_filled_frames,
            row_offsets=self._row_offsets,
        )

    # --------------------------------------------------------------- decisions
    def decide(self, job: DecisionJob) -> Prediction:
        """Run one decision (thread-safe: reads only the job and the model)."""
        if job.early:
            probabilities = early_probabilities(
                self.model, job.features, job.clips, self._window_joints(job.joints),
                self.temperature)
        else:
            probabilities = self.clip_probabilities(job.features, job.clips, job.joints)
        if job.row_offsets is not None:
            probabilities = apply_row_offset(probabilities, job.row_offsets)
        latency = time.perf_counter() - job.created_s
        prediction = Prediction(
            block=int(np.argmax(probabilities)) + 1,
            probabilities=probabilities,
            start_stamp_ns=job.start_stamp_ns,
            last_frame_stamp_ns=job.last_frame_stamp_ns,
            decision_latency_s=latency,
            early=job.early,
            fraction_seen=job.fraction_seen,
            sampling_method=job.sampling_method,
            window_stamps_ns=job.window_stamps_ns,
            skeleton_filled_frames=job.skeleton_filled_frames,
        )
        self.stats.record_decision(latency, job.early, job.skeleton_filled_frames)
        self.last_prediction = prediction
        return prediction

    def _window_joints(self, joints: Any) -> Optional[torch.Tensor]:
        """Return the window's joints as float32 (n, 25, 3) (two-stream; else None)."""
        if not self.two_stream:
            return None
        if joints is None:
            raise ValueError(f'{self.model_name} takes RGB and joints: the window joints '
                             '(n, 25, 3) are missing')
        return torch.as_tensor(joints, dtype=torch.float32).to(self.device)

    def clip_probabilities(self, window_features: torch.Tensor,
                           clips: Optional[Sequence[np.ndarray]] = None,
                           joints: Any = None) -> np.ndarray:
        """
        Mean calibrated softmax over the test clips of a full window (Table II rule).

        ``window_features``: (40, ...) the frames' ``model.encode_frames`` (RGB models,
        :meth:`window_features_from_crops`) or (40, 25, 3) joints (joints-only models,
        NaN where no skeleton).
        ``joints``: two-stream models only, the window's joints (40, 25, 3) in Kinect
        camera space (m), NaN where no skeleton. Returns float64 (9,).
        """
        return final_probabilities(
            self._runner, window_features, self._clips if clips is None else clips,
            self._window_joints(joints), self.temperature)

    # ------------------------------------------------------- stored windows
    def window_features_from_crops(self, crops: np.ndarray) -> torch.Tensor:
        """Per-frame model encoding of stored crops uint8 (T, S, S, 3) (offline use)."""
        with torch.inference_mode():
            return self.model.encode_frames(test_transform(crops, self.preprocess,
                                                           self.device))

    def predict_crops(self, crops: Optional[np.ndarray], joints: Optional[np.ndarray] = None
                      ) -> np.ndarray:
        """
        Probabilities (9,) for one pre-cut window of stored crops (T >= 40 frames).

        ``joints`` (T, 25, 3): the frames' joints, required by models that take joints
        (a joints-only model decides from them alone; ``crops`` may then be None).
        """
        if self.input_kind == 'joints':
            if joints is None:
                raise ValueError(f'{self.model_name} decides from joints: the window '
                                 'joints (T, 25, 3) are missing')
            return self.clip_probabilities(torch.as_tensor(
                np.asarray(joints, np.float32)[:WINDOW]).to(self.device))
        return self.clip_probabilities(
            self.window_features_from_crops(crops[:WINDOW]),
            joints=None if joints is None else np.asarray(joints, np.float32)[:WINDOW])

    # ------------------------------------------------------------- statistics
    def snapshot(self) -> Dict[str, int]:
        """Return a copy of the counters (safe while decisions run on another thread)."""
        return self.stats.snapshot()

    def latency_percentiles(self) -> Dict[str, float]:
        """Return decision latency p50/p95/last in seconds (NaN before the first one)."""
        return self.stats.latency_percentiles()

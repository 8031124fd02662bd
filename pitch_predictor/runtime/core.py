"""
PredictorCore: the ROS-free heart of the live predictor, shared by node and evaluator.

Per arriving frame (once): RGB -> :func:`crop_frames` -> :func:`image_signature` (for
the start detector) and :func:`test_transform` -> ``model.backbone`` -> features into a
bounded rolling buffer. Frames and skeletons are paired by stamp; each paired frame
steps the streaming start detector. When a start is found, the 40-frame window fills
from the buffer; once complete, the Table II test clips of the configured sampling
method run through ``model.forward_features`` (recurrent layers and head only) in one
batch, and the prediction is :func:`pitch_predictor.decision.mean_clip_probabilities`
(the mean calibrated softmax, the checkpoint's temperature) over the clips.

Two-stream models (``input_kind == 'rgb+joints'``) get the joints paired with each
window frame beside its cached features. A frame without its own skeleton reuses the
last one for ``skeleton_hold_frames`` frames, then gets NaN joints (the model masks
them); a window with more than ``max_missing_skeleton_fraction`` of its frames without
their own skeleton is not decided at all (counted ``windows_skipped_no_skeleton``,
notified under the key ``skeleton_gap``). See docs/node.md, "Skeleton gaps".

Decisions are :class:`DecisionJob` objects holding everything they need (features,
clips), so they can run on another thread: pass ``submit`` to hand them to a worker
(the node does), or leave it None and they run inline and ``ingest_*`` return the
predictions (offline evaluation does).

Bad input never raises: it is counted in :attr:`PredictorCore.counters` and reported
through the ``notify(key, message)`` callback (the node throttles its log by key).
"""

from collections import Counter, deque
from dataclasses import dataclass, field, fields, replace
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from pitch_predictor.checkpoint import (
    build_model_from_checkpoint, Checkpoint, load_checkpoint, PathLike)
from pitch_predictor.decision import (
    checkpoint_temperature, mean_clip_probabilities, prefix_groups)
from pitch_predictor.device import select_device
from pitch_predictor.kinect import FPS, NUM_BLOCKS, NUM_JOINTS, WINDOW
from pitch_predictor.preprocessing import crop_frames, PreprocessError, test_transform
from pitch_predictor.runtime.feature_buffer import (
    FeatureBuffer, SKELETON_HELD, SKELETON_MISSING, SKELETON_PAIRED, StreamFrame)
from pitch_predictor.runtime.messages import MessageError, skeleton_stamp_ns, stamp_to_ns
from pitch_predictor.runtime.pairing import PairedSample, StampPairer
from pitch_predictor.sampling import sampling_method as sampling_row
from pitch_predictor.sampling import test_clip_indices
from pitch_predictor.start_detector import (
    image_signature, StartDetectorConfig, StreamingStartDetector)
import torch

_LOG = logging.getLogger(__name__)

# Frames kept beyond the window: the detector reports a start ``run_length`` - 1 frames
# after it happened (run_length is at most 40 as a node parameter).
_BUFFER_MARGIN = 48

PHASES = ('waiting_for_rest', 'armed', 'in_action', 'recording', 'predicted')

# The model inputs the core can feed: RGB features, joints, or both (two-stream).
INPUT_KINDS = ('rgb', 'joints', 'rgb+joints')

# The joints of a frame without a skeleton, as two-stream models receive them.
_NO_JOINTS = np.full((NUM_JOINTS, 3), np.nan, dtype=np.float32)


class CoreConfigError(ValueError):
    """A PredictorCore setting is out of range or does not fit the model."""


@dataclass
class CoreConfig:
    """
    Run-time settings of the core (the node maps its parameters onto these).

    ``sampling_method``: Table II test sampling, 0 = the checkpoint's own method.
    ``pair_tolerance_s``: largest frame/skeleton stamp difference that still pairs.
    ``max_pending_frames``: frames waiting for a skeleton before they go on without one.
    ``skeleton_hold_frames``: an unpaired frame reuses the last skeleton this many frames.
    ``max_gap_s``: a larger jump between frame stamps resets the stream (smaller gaps
    are counted as missing frames and the stream continues).
    ``early_estimates``/``early_every_frames``: streaming estimates while the window
    fills (forward, streamable models only).
    ``max_missing_skeleton_fraction``: two-stream models only: a window (or the part of
    it an early estimate has seen) with a larger share of frames without their own
    skeleton (held or none) is not decided.
    ``detector``: the start detector's settings.
    """

    sampling_method: int = 0
    pair_tolerance_s: float = 0.010
    max_pending_frames: int = 90
    skeleton_hold_frames: int = 3
    max_gap_s: float = 0.5
    early_estimates: bool = True
    early_every_frames: int = 5
    max_missing_skeleton_fraction: float = 0.5
    detector: StartDetectorConfig = field(default_factory=StartDetectorConfig)

    def validate(self) -> None:
        """Raise :class:`CoreConfigError` naming the first invalid setting."""
        if self.sampling_method != 0:
            try:
                sampling_row(self.sampling_method)
            except ValueError as exc:
                raise CoreConfigError(f'sampling_method: {exc}') from None
        checks = (
            ('pair_tolerance_s', 0.0 <= self.pair_tolerance_s <= 1.0, 'in [0, 1] s'),
            ('max_pending_frames', 0 <= self.max_pending_frames <= 300, 'in 0..300'),
            ('skeleton_hold_frames', 0 <= self.skeleton_hold_frames <= 30, 'in 0..30'),
            ('max_gap_s', 0.0 < self.max_gap_s <= 60.0, 'in (0, 60] s'),
            ('early_every_frames', 1 <= self.early_every_frames <= WINDOW,
             f'in 1..{WINDOW}'),
            ('max_missing_skeleton_fraction',
             0.0 <= self.max_missing_skeleton_fraction <= 1.0, 'in [0, 1]'),
        )
        for name, ok, expected in checks:
            if not ok:
                raise CoreConfigError(f'{name} = {getattr(self, name)!r} must be {expected}')


@dataclass(frozen=True)
class Prediction:
    """
    One decision about one pitch.

    ``block``: 1..9; ``probabilities``: (9,) float, class index = block - 1.
    ``start_stamp_ns``: stamp of the detected start frame (identifies the pitch).
    ``last_frame_stamp_ns``: stamp of the newest frame the decision saw.
    ``decision_latency_s``: from the newest frame's arrival in the core to the result.
    ``early``: True for an estimate while the window fills; ``fraction_seen`` is the
    part of the 40-frame window seen (1.0 for the final prediction).
    ``skeleton_filled_frames``: two-stream models: frames of the decision without their
    own skeleton (held or NaN joints); 0 otherwise.
    """

    block: int
    probabilities: np.ndarray
    start_stamp_ns: int
    last_frame_stamp_ns: int
    decision_latency_s: float
    early: bool
    fraction_seen: float
    sampling_method: int = 0
    window_stamps_ns: tuple = ()
    skeleton_filled_frames: int = 0


@dataclass
class DecisionJob:
    """Everything one decision needs; safe to run on another thread."""

    early: bool
    features: Any  # tensor (n, ...) stream frames from the start frame on
    clips: List[np.ndarray]
    sampling_method: int
    start_stamp_ns: int
    last_frame_stamp_ns: int
    fraction_seen: float
    window_stamps_ns: tuple
    created_s: float = field(default_factory=time.perf_counter)
    joints: Any = None  # two-stream models: tensor (n, 25, 3), NaN rows = no skeleton
    skeleton_filled_frames: int = 0


@dataclass
class _FramePayload:
    signature: Any
    features: Any
    arrival_s: float


@dataclass
class _Window:
    start_index: int
    start_stamp_ns: int
    next_early: int


def _noop_notify(key: str, message: str) -> None:
    _LOG.info('%s: %s', key, message)


class PredictorCore:
    """
    Turn a stream of stamped frames and skeletons into pitch predictions.

    ``checkpoint``: a :class:`Checkpoint` or a path to one. ``config``: a
    :class:`CoreConfig`. ``device``: 'auto', 'cpu', 'cuda', 'cuda:N' or a device.
    ``model``: an already built model (skips building from the checkpoint).
    ``submit``: where decision jobs go (None: decide inline, return predictions).
    ``notify``: ``(key, message)`` for resets and rejections (throttle by key).
    """

    def __init__(self, checkpoint: Union[Checkpoint, PathLike],
                 config: Optional[CoreConfig] = None, *,
                 device: Union[str, torch.device] = 'auto',
                 model: Optional[torch.nn.Module] = None,
                 submit: Optional[Callable[[DecisionJob], None]] = None,
                 notify: Optional[Callable[[str, str], None]] = None) -> None:
        self.device = select_device(device) if isinstance(device, str) else torch.device(device)
        self.checkpoint = (checkpoint if isinstance(checkpoint, Checkpoint)
                           else load_checkpoint(checkpoint))
        self.model = model if model is not None else build_model_from_checkpoint(
            self.checkpoint, self.device)
        self.model.eval()
        self.preprocess = self.checkpoint.preprocess
        self.input_kind = getattr(self.model, 'input_kind', 'rgb')
        if self.input_kind not in INPUT_KINDS:
            raise CoreConfigError(f'model {self.checkpoint.model_name} has input_kind '
                                  f'{self.input_kind!r}; the core runs {INPUT_KINDS}')
        self.streamable = bool(getattr(self.model, 'streamable', False))
        try:
            self.temperature = checkpoint_temperature(self.checkpoint.meta)
        except ValueError as exc:
            raise CoreConfigError(f'checkpoint {self.checkpoint.path}: {exc}') from None
        self._submit = submit
        self._notify = notify or _noop_notify
        self.counters: Counter = Counter()
        self.latencies_s: Deque[float] = deque(maxlen=500)
        # decide() may run on a worker thread: it updates statistics under this lock and
        # snapshot() reads them under it.
        self._stats_lock = threading.Lock()
        self.last_prediction: Optional[Prediction] = None
        self.last_joints: Optional[np.ndarray] = None
        self.buffer = FeatureBuffer(WINDOW + _BUFFER_MARGIN)
        self.config = CoreConfig()
        self._pairer = StampPairer(0)
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

    def configure(self, config: CoreConfig) -> None:
        """Apply new settings (validated first); a new detector config re-arms detection."""
        config.validate()
        method = config.sampling_method or self.checkpoint.sampling_method
        try:
            clips = test_clip_indices(method, WINDOW)
        except ValueError as exc:
            raise CoreConfigError(f'sampling method {method}: {exc}') from None
        detector_changed = config.detector != self.config.detector or not hasattr(
            self, '_detector')
        self.config = replace(config)
        self._clips = clips
        self._pairer.tolerance_ns = int(round(config.pair_tolerance_s * 1e9))
        self._pairer.max_pending_frames = config.max_pending_frames
        if detector_changed:
            self._detector = StreamingStartDetector(config.detector)
            self._window = None

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
        if self._window is not None:
            return 'recording'
        state = str(getattr(self._detector, 'state', 'waiting_for_rest'))
        if self.last_prediction is not None and not self.last_prediction.early \
                and state != 'armed' and self._frames_since_decision < WINDOW:
            return 'predicted'
        return state

    @property
    def window_fill(self) -> float:
        """Fraction of the current window received (0 when not recording)."""
        if self._window is None or self.buffer.newest_index is None:
            return 0.0
        return min(1.0, (self.buffer.newest_index - self._window.start_index + 1) / WINDOW)

    def reset(self, reason: str = 'requested') -> None:
        """Forget the stream (buffer, pairing, detector); counted under ``resets.<reason>``."""
        self.counters[f'resets.{reason}'] += 1
        self._reset_stream()

    def _reset_stream(self) -> None:
        """Forget everything, pending frames and queued skeletons included."""
        self._pairer.reset()
        self._last_frame_ns: Optional[int] = None
        self._reset_state()

    def _reset_state(self) -> None:
        """Start the stream afresh from the next released frame (pairing untouched)."""
        self._abort_window()
        self.buffer.clear()
        self._detector.reset()
        self._window = None
        self._next_index = 0
        self._held_joints: Optional[np.ndarray] = None
        self._frames_without_skeleton = 0
        self._frames_since_decision = WINDOW

    def count_rejection(self, kind: str, reason: str, detail: str) -> None:
        """Count a rejected ``kind`` ('frame'/'skeleton') message and notify."""
        self.counters[f'{kind}s_rejected.{reason}'] += 1
        self._notify(f'{kind}.{reason}', f'{kind} rejected ({reason}): {detail}')

    # ----------------------------------------------------------------- ingest
    def ingest_frame(self, stamp_ns: int, rgb: np.ndarray) -> List[Prediction]:
        """Take one camera frame (RGB uint8 (H, W, 3)); return predictions made inline."""
        self.counters['frames_received'] += 1
        stamp_ns = int(stamp_ns)
        if not self._accept_frame_stamp(stamp_ns):
            return []
        try:
            payload = self._frame_payload(rgb)
        except PreprocessError as exc:
            self.count_rejection('frame', 'bad_size', str(exc))
            return []
        reason = self._stream_break(stamp_ns)
        if reason == 'stamp_backwards':
            self._pairer.restart_frames()
        self._last_frame_ns = stamp_ns
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

    def ingest_image_msg(self, msg: Any, to_rgb: Callable[[Any], np.ndarray]
                         ) -> Tuple[Optional[np.ndarray], List[Prediction]]:
        """
        Convert an image message with ``to_rgb`` and ingest it (node and offline evaluator).

        Returns the RGB frame (None when the message was rejected and counted) and the
        predictions made inline.
        """
        try:
            rgb = to_rgb(msg)
        except MessageError as exc:
            self.count_rejection('frame', exc.reason, exc.detail)
            return None, []
        return rgb, self.ingest_frame(stamp_to_ns(msg.header.stamp), rgb)

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

    def _accept_frame_stamp(self, stamp_ns: int) -> bool:
        """Refuse a repeated stamp; count frames missing before this one."""
        last = self._last_frame_ns
        if last is None or stamp_ns < last:
            return True
        if stamp_ns == last:
            self.count_rejection('frame', 'duplicate_stamp', f'stamp {stamp_ns} seen already')
            return False
        gap_s = (stamp_ns - last) / 1e9
        missing = int(round(gap_s * FPS)) - 1
        if missing > 0 and gap_s <= self.config.max_gap_s:
            self.counters['frames_missing'] += missing
            self._notify('frames_missing', f'{missing} frame(s) missing before stamp '
                         f'{stamp_ns} (gap {gap_s * 1e3:.0f} ms)')
        return True

    def _stream_break(self, stamp_ns: int) -> Optional[str]:
        """
        Return why the stream restarts at this frame (None: it continues).

        The reset itself happens when this frame leaves the pairer, so frames still
        waiting for their skeletons ahead of it are processed first.
        """
        last = self._last_frame_ns
        if last is None:
            return None
        if stamp_ns < last:
            back_s = (last - stamp_ns) / 1e9
            self._notify('stamp_backwards', f'frame stamp went back by {back_s:.3f} s '
                         '(looping bag or restarted driver): stream reset')
            return 'stamp_backwards'
        gap_s = (stamp_ns - last) / 1e9
        if gap_s > self.config.max_gap_s:
            self._notify('stream_gap', f'{gap_s:.2f} s without frames (> max_gap_s '
                         f'{self.config.max_gap_s}): stream reset')
            return 'stream_gap'
        return None

    def _abort_window(self) -> None:
        if self._window is not None:
            self.counters['windows_aborted'] += 1

    def _frame_payload(self, rgb: np.ndarray) -> _FramePayload:
        arrival = time.perf_counter()
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 \
                or rgb.dtype != np.uint8:
            raise PreprocessError(
                f'frame must be RGB uint8 (H, W, 3), got {getattr(rgb, "shape", None)} '
                f'{getattr(rgb, "dtype", type(rgb).__name__)}')
        crop = crop_frames(rgb, self.preprocess)[0]
        signature = image_signature(crop, self.config.detector)
        features = None
        if self.input_kind != 'joints':
            with torch.inference_mode():
                image = test_transform(crop[None], self.preprocess, self.device)
                features = self.model.backbone(image)[0]
        return _FramePayload(signature, features, arrival)

    def _advance(self, samples: Sequence[PairedSample]) -> List[Prediction]:
        predictions: List[Prediction] = []
        for sample in samples:
            job = self._step(sample)
            for one in job:
                if self._submit is not None:
                    self._submit(one)
                else:
                    predictions.append(self.decide(one))
        return predictions

    def _joints_for(self, sample: PairedSample) -> Tuple[Optional[np.ndarray], str]:
        """Return the frame's joints (its own, held, or None) and which of those they are."""
        if sample.joints is not None:
            self.counters['frames_paired'] += 1
            self._held_joints = sample.joints
            self._frames_without_skeleton = 0
            return sample.joints, SKELETON_PAIRED
        self.counters['frames_without_skeleton'] += 1
        self._frames_without_skeleton += 1
        if self._frames_without_skeleton == self.config.skeleton_hold_frames + 1:
            self._notify('missing_skeleton', 'no skeleton paired for '
                         f'{self._frames_without_skeleton} frames: start detection paused')
        if self._frames_without_skeleton <= self.config.skeleton_hold_frames \
                and self._held_joints is not None:
            self.counters['frames_skeleton_held'] += 1
            return self._held_joints, SKELETON_HELD
        self.counters['frames_skeleton_missing'] += 1
        return None, SKELETON_MISSING

    def _step(self, sample: PairedSample) -> List[DecisionJob]:
        """Add one paired frame to the stream; return the decision jobs it triggers."""
        if sample.reset_reason is not None:
            self.counters[f'resets.{sample.reset_reason}'] += 1
            self._reset_state()
        index = self._next_index
        self._next_index += 1
        self._frames_since_decision += 1
        joints, source = self._joints_for(sample)
        features = sample.payload.features
        if self.input_kind == 'joints':
            if joints is None:
                # A joints model cannot use a frame without a skeleton: restart.
                self._reset_state()
                return []
            features = torch.from_numpy(np.array(joints)).to(self.device)
        self.buffer.append(StreamFrame(index, sample.stamp_ns, features, joints, source))
        if joints is not None:
            event = self._detector.update(index, sample.payload.signature, joints)
            if event is not None:
                self._start_window(int(_event_index(event)))
        elif self._frames_without_skeleton == self.config.skeleton_hold_frames + 1:
            self._detector.reset()
        return self._window_jobs(index, sample.payload.arrival_s)

    def _start_window(self, start_index: int) -> None:
        if self._window is not None:
            self.counters['starts_ignored_while_recording'] += 1
            return
        first = self.buffer.get(start_index)
        if first is None:
            self.counters['windows_lost'] += 1
            self._notify('window_lost', f'start frame {start_index} already left the buffer')
            return
        self.counters['windows_started'] += 1
        self._window = _Window(start_index, first.stamp_ns, self.config.early_every_frames)

    def _window_jobs(self, index: int, arrival_s: float) -> List[DecisionJob]:
        window = self._window
        if window is None:
            return []
        seen = index - window.start_index + 1
        if seen >= WINDOW:
            self._window = None
            action_done = getattr(self._detector, 'action_done', None)
            if action_done is not None:
                action_done()
            job = self._job(window, WINDOW, early=False, arrival_s=arrival_s)
            if job is None:
                return []
            self._frames_since_decision = 0
            return [job]
        if self.config.early_estimates and self.streamable and seen >= window.next_early:
            window.next_early = (seen // self.config.early_every_frames + 1) \
                * self.config.early_every_frames
            job = self._job(window, seen, early=True, arrival_s=arrival_s)
            return [] if job is None else [job]
        return []

    def _job(self, window: _Window, seen: int, *, early: bool,
             arrival_s: float) -> Optional[DecisionJob]:
        """Return the decision over the window's first ``seen`` frames (None: skipped)."""
        frames = self.buffer.span(window.start_index, seen)
        joints, filled = None, 0
        if self.two_stream:
            filled = sum(1 for f in frames if f.skeleton != SKELETON_PAIRED)
            if filled / seen > self.config.max_missing_skeleton_fraction:
                self._skip_for_skeleton(window, seen, filled, early)
                return None
            joints = torch.from_numpy(np.stack(
                [_NO_JOINTS if f.joints is None else f.joints for f in frames])).to(
                    self.device)
        return DecisionJob(
            early=early,
            features=torch.stack([f.features for f in frames]),
            clips=self._clips,
            sampling_method=self.sampling_method,
            start_stamp_ns=window.start_stamp_ns,
            last_frame_stamp_ns=frames[-1].stamp_ns,
            fraction_seen=seen / WINDOW,
            window_stamps_ns=tuple(f.stamp_ns for f in frames),
            created_s=arrival_s,
            joints=joints,
            skeleton_filled_frames=filled,
        )

    def _skip_for_skeleton(self, window: _Window, seen: int, filled: int,
                           early: bool) -> None:
        """Count and report a decision not made: too little of the skeleton was tracked."""
        what = 'early estimate' if early else 'prediction'
        self.counters['early_skipped_no_skeleton' if early
                      else 'windows_skipped_no_skeleton'] += 1
        # Own keys: throttled early-estimate notes must not hide the final's.
        self._notify('skeleton_gap_early' if early else 'skeleton_gap', (
            f'no {what} for the pitch starting at {window.start_stamp_ns / 1e9:.3f} s: '
            f'{filled} of {seen} frames without their own skeleton (more than '
            f'max_missing_skeleton_fraction {self.config.max_missing_skeleton_fraction})'))

    # --------------------------------------------------------------- decisions
    def decide(self, job: DecisionJob) -> Prediction:
        """Run one decision (thread-safe: reads only the job and the model)."""
        with torch.inference_mode():
            if job.early:
                probabilities = self._early_probabilities(job.features, job.clips,
                                                          job.joints)
            else:
                probabilities = self.clip_probabilities(job.features, job.clips, job.joints)
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
        with self._stats_lock:
            self.latencies_s.append(latency)
            self.counters['early_estimates' if job.early else 'predictions'] += 1
            if job.skeleton_filled_frames:
                self.counters['early_estimates_with_filled_skeleton' if job.early
                              else 'decisions_with_filled_skeleton'] += 1
            self.last_prediction = prediction
        return prediction

    def _window_joints(self, joints: Any, device: torch.device) -> torch.Tensor:
        """Return the window's joints as float32 (n, 25, 3) on ``device`` (two-stream)."""
        if joints is None:
            raise ValueError(f'{self.model_name} takes RGB and joints: the window joints '
                             '(n, 25, 3) are missing')
        return torch.as_tensor(joints, dtype=torch.float32).to(device)

    def clip_probabilities(self, window_features: torch.Tensor,
                           clips: Optional[Sequence[np.ndarray]] = None,
                           joints: Any = None) -> np.ndarray:
        """
        Mean calibrated softmax over the test clips of a full window (Table II rule).

        ``window_features``: (40, C, h, w) backbone features (RGB models) or (40, 25, 3)
        joints (joints models). ``joints``: two-stream models only, the window's joints
        (40, 25, 3) in Kinect camera space (m), NaN where no skeleton. Returns float64 (9,).
        """
        clips = self._clips if clips is None else clips
        index = torch.as_tensor(np.stack(clips), device=window_features.device)
        batch = window_features[index]  # (K, T, ...)
        with torch.inference_mode():
            if self.input_kind == 'joints':
                logits = self.model(batch)
            elif self.two_stream:
                window_joints = self._window_joints(joints, window_features.device)
                logits = self.model.forward_features(batch, window_joints[index])
            else:
                logits = self.model.forward_features(batch)
            probabilities = mean_clip_probabilities(logits, self.temperature)
        return probabilities.double().cpu().numpy()

    def _early_probabilities(self, features: torch.Tensor, clips: Sequence[np.ndarray],
                             joints: Any = None) -> np.ndarray:
        """Mean calibrated softmax of the streaming model over the clips' frames seen."""
        window_joints = self._window_joints(joints, features.device) if self.two_stream \
            else None
        outputs = []
        for group in prefix_groups(clips, features.shape[0]):
            index = torch.as_tensor(group, device=features.device)
            batch = features[index]  # (k, L, ...)
            group_joints = None if window_joints is None else window_joints[index]
            state = self.model.init_state(batch.shape[0], features.device)
            for t in range(batch.shape[1]):
                if group_joints is None:
                    logits, state = self.model.step_features(batch[:, t], state)
                else:
                    logits, state = self.model.step_features(batch[:, t], group_joints[:, t],
                                                             state)
            outputs.append(logits)
        if not outputs:
            return np.full(NUM_BLOCKS, 1.0 / NUM_BLOCKS)
        return mean_clip_probabilities(torch.cat(outputs), self.temperature).double() \
            .cpu().numpy()

    def window_features_from_crops(self, crops: np.ndarray) -> torch.Tensor:
        """Per-frame model input for stored crops uint8 (T, S, S, 3) (offline use)."""
        with torch.inference_mode():
            return self.model.backbone(test_transform(crops, self.preprocess, self.device))

    def predict_crops(self, crops: np.ndarray, joints: Optional[np.ndarray] = None
                      ) -> np.ndarray:
        """
        Probabilities (9,) for one pre-cut window of stored crops (T >= 40 frames).

        ``joints`` (T, 25, 3): the frames' joints, required by two-stream models.
        """
        return self.clip_probabilities(
            self.window_features_from_crops(crops[:WINDOW]),
            joints=None if joints is None else np.asarray(joints, np.float32)[:WINDOW])

    # ------------------------------------------------------------- statistics
    def snapshot(self) -> Dict[str, int]:
        """Return a copy of the counters (safe while decisions run on another thread)."""
        with self._stats_lock:
            return dict(self.counters)

    def latency_percentiles(self) -> Dict[str, float]:
        """Return decision latency p50/p95/last in seconds (NaN before the first one)."""
        with self._stats_lock:
            values = np.asarray(list(self.latencies_s), dtype=float)
        if values.size == 0:
            return {'p50': float('nan'), 'p95': float('nan'), 'last': float('nan')}
        return {'p50': float(np.percentile(values, 50)),
                'p95': float(np.percentile(values, 95)), 'last': float(values[-1])}


def _event_index(event: Any) -> int:
    """Start frame stream index carried by a detector event."""
    for name in ('start_index', 'stream_index', 'index'):
        if hasattr(event, name):
            return int(getattr(event, name))
    return int(event)

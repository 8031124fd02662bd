"""
Start-frame detector of the paper (Section IV-A), over a whole trial and streaming.

With joints theta_t (25 x 3, metres) and image signatures x_t, the distances to a
reference frame are ``dtheta_t = ||theta_t - theta_ref||_2`` (over all 75 numbers) and
``dx_t = ||x_t - x_ref||_F``. The start is the smallest ``i`` after the reference with

a) ``dx_t >= delta_image`` for ``t = i .. i + run_length - 1``,
b) ``dx_{t+1} >= dx_t`` for ``t = i .. i + run_length - 2`` (non-decreasing),
c) ``dtheta_i >= delta_joints``.

The paper's thresholds are delta1 = 6 and delta2 = 0.16 m with reference frame 10
(1-based; ``reference_index=9`` here, 0-based) and a run of 8 frames.

Image normalisation (the scale delta1 refers to; the paper does not give it):
:func:`image_signature` turns a crop of any size (the stored 240 or 120 px crop) into
its ITU-R 601 grey image, area-resized to ``signature_size`` x ``signature_size``
(default 96) and normalised like the network input, ``(grey / 255 - 0.449) / 0.226``
(ImageNet mean and std averaged over the channels). dx = 6 then means, for example, a
change of 0.2 (about 11 grey levels) on 10 % of the signature's pixels. On the
synthetic set, rest frames differ by dx of about 1-3 (sensor noise, lamp flicker) and
a starting pitch passes 6 within 1-2 frames. The signature size does not depend on
the stored crop size, so the threshold means the same in the fast (120 px) and paper
(240 px) configurations.

Streaming (:class:`StreamingStartDetector`, used by the node): the reference is not a
fixed frame number but the frame at which the person has been still for
``rest_frames`` frames (every frame of the run within ``rest_image_tol`` /
``rest_joint_tol`` of its first frame). Conditions a), b), c) are checked for each
candidate ``i`` as soon as frame ``i + run_length - 1`` arrives, so an event comes
``run_length - 1`` frames after the start frame it reports. After an event the
detector ignores frames until :meth:`StreamingStartDetector.action_done` (or
``action_frames`` frames), then waits until the person is still again (refractory),
near the spot where he stood before the pitch (``rearm_distance``, SpineBase) or, if he
has moved to a new spot, for ``rearm_timeout_frames`` (a pitcher who stands in his
finish stance and then walks back starts no pitch).
On a trial that begins with ``reference_index + 1`` still frames the streaming and
whole-trial detectors return the same start.
"""

from collections import deque
from dataclasses import dataclass
from typing import Deque, Optional, Tuple

import cv2
import numpy as np


class StartNotFound(RuntimeError):
    """No frame of the sequence satisfies the start conditions (the message says why)."""


@dataclass
class StartDetectorConfig:
    """Thresholds (paper defaults), image normalisation and streaming settings."""

    delta_image: float = 6.0
    delta_joints: float = 0.16
    reference_index: int = 9
    run_length: int = 8
    min_start_index: int = 10
    signature_size: int = 96  # grey signature side (see module doc)
    signature_mean: float = 0.449  # grey mean/std normalisation, as the network input's
    signature_std: float = 0.226
    rest_frames: int = 10  # still frames before the streaming detector arms
    rest_image_tol: float = 4.0  # dx to the run's first frame that still counts as still
    rest_joint_tol: float = 0.13  # m, dtheta to the run's first frame, likewise
    action_frames: int = 40  # frames ignored after a start unless action_done() comes first
    # After an action, a still pose re-arms only near the pre-pitch rest spot (SpineBase
    # within rearm_distance m; 0 = anywhere) or once it has lasted rearm_timeout_frames:
    # a pitcher standing in his finish stance and then walking back is not a new pitch.
    rearm_distance: float = 0.25
    rearm_timeout_frames: int = 90

    def __post_init__(self) -> None:
        """Check the values are usable."""
        if self.run_length < 1 or self.rest_frames < 1 or self.signature_size < 1:
            raise ValueError('run_length, rest_frames and signature_size must be >= 1')
        if self.rearm_distance < 0 or self.rearm_timeout_frames < self.rest_frames:
            raise ValueError('rearm_distance must be >= 0 and rearm_timeout_frames >= '
                             'rest_frames')
        if self.min_start_index <= self.reference_index:
            raise ValueError('min_start_index must come after reference_index')


def image_signature(crop: np.ndarray, cfg: StartDetectorConfig) -> np.ndarray:
    """Return the normalised image x_t of a uint8 RGB crop (S, S, 3): float32 (n, n)."""
    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.shape[-1] != 3 or crop.dtype != np.uint8:
        raise ValueError(f'image_signature expects a uint8 RGB crop (S, S, 3), got '
                         f'{crop.dtype} {crop.shape}')
    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    size = int(cfg.signature_size)
    interpolation = cv2.INTER_AREA if grey.shape[0] >= size else cv2.INTER_LINEAR
    small = cv2.resize(grey, (size, size), interpolation=interpolation)
    return (small.astype(np.float32) / 255.0 - cfg.signature_mean) / cfg.signature_std


def _signatures(images: np.ndarray, cfg: StartDetectorConfig) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3:
        return np.stack([image_signature(c, cfg) for c in images])
    return images.astype(np.float32)


def distances(signatures: np.ndarray, joints: np.ndarray, reference: int
              ) -> Tuple[np.ndarray, np.ndarray]:
    """Return (dx, dtheta) of every frame to frame ``reference``: each (T,)."""
    sig = np.asarray(signatures, dtype=np.float64).reshape(len(signatures), -1)
    jts = np.asarray(joints, dtype=np.float64).reshape(len(joints), -1)
    dx = np.linalg.norm(sig - sig[reference], axis=1)
    dtheta = np.linalg.norm(jts - jts[reference], axis=1)
    return dx, dtheta


def start_conditions(run_dx: np.ndarray, dtheta_first: float,
                     cfg: StartDetectorConfig) -> Tuple[bool, bool, bool]:
    """
    Return the paper's conditions (a, b, c) for one candidate start frame.

    ``run_dx``: dx of the candidate and the ``run_length - 1`` frames after it;
    ``dtheta_first``: dtheta of the candidate. The whole-trial and the streaming
    detector both decide with this function.
    """
    run = np.asarray(run_dx, dtype=np.float64)
    a = bool(np.all(run >= cfg.delta_image))
    b = bool(np.all(np.diff(run) >= 0.0))
    c = bool(dtheta_first >= cfg.delta_joints)
    return a, b, c


def detect_start(images: np.ndarray, joints: np.ndarray,
                 cfg: Optional[StartDetectorConfig] = None) -> int:
    """
    Return the 0-based start frame of a trial.

    ``images``: uint8 RGB crops (T, S, S, 3) or their signatures (T, n, n) from
    :func:`image_signature`; ``joints``: (T, 25, 3) metres. Raises
    :class:`StartNotFound` when no frame qualifies, saying which condition failed.
    """
    cfg = cfg or StartDetectorConfig()
    sig = _signatures(images, cfg)
    joints = np.asarray(joints)
    if len(sig) != len(joints):
        raise ValueError(f'{len(sig)} images but {len(joints)} joint frames')
    last = len(sig) - cfg.run_length
    if len(sig) <= cfg.reference_index or last < cfg.min_start_index:
        raise StartNotFound(f'sequence of {len(sig)} frames is too short: needs more than '
                            f'{cfg.min_start_index + cfg.run_length - 1} frames')
    dx, dtheta = distances(sig, joints, cfg.reference_index)
    counts = [0, 0, 0]
    for i in range(cfg.min_start_index, last + 1):
        ok = start_conditions(dx[i:i + cfg.run_length], dtheta[i], cfg)
        if all(ok):
            return i
        for k in range(3):
            counts[k] += ok[k]
    raise StartNotFound(
        f'no start frame in {len(sig)} frames: a) dx >= {cfg.delta_image} for '
        f'{cfg.run_length} frames held at {counts[0]} candidates (max dx '
        f'{dx.max():.2f}), b) non-decreasing dx at {counts[1]}, c) dtheta >= '
        f'{cfg.delta_joints} m at {counts[2]} (max dtheta {dtheta.max():.3f} m)')


@dataclass(frozen=True)
class StartEvent:
    """A start found by the streaming detector."""

    start_index: int  # stream index of the start frame
    reference_index: int  # stream index of the rest reference frame
    detected_index: int  # stream index of the frame that completed the run
    dx: float
    dtheta: float


class StreamingStartDetector:
    """The paper's detector fed one (signature, joints) pair at a time (see module doc)."""

    def __init__(self, cfg: Optional[StartDetectorConfig] = None):
        self.cfg = cfg or StartDetectorConfig()
        self.reset()

    def reset(self) -> None:
        """Forget everything (e.g. stamps went backwards): wait for rest again."""
        self.state = 'waiting_for_rest'
        self._last_index: Optional[int] = None
        self._run_first: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self._run_length = 0
        self._run_start_index = -1
        self._reference: Optional[Tuple[int, np.ndarray, np.ndarray]] = None
        self._window: Deque[Tuple[int, float, float]] = deque(maxlen=self.cfg.run_length)
        self._action_start: Optional[int] = None
        self._home: Optional[np.ndarray] = None  # SpineBase at the last pitch's reference

    @property
    def reference_index(self) -> Optional[int]:
        """Return the stream index of the current rest reference (None when not armed)."""
        return None if self._reference is None else self._reference[0]

    def action_done(self) -> None:
        """End the current action: wait until the person is still again before re-arming."""
        if self.state == 'in_action':
            self._to_waiting()

    def _may_arm(self, jts: np.ndarray) -> bool:
        """Return True when a completed still run may become the rest reference."""
        cfg = self.cfg
        if self._home is None or cfg.rearm_distance <= 0:
            return True
        near = float(np.linalg.norm(jts[:3] - self._home)) <= cfg.rearm_distance
        return near or self._run_length >= cfg.rearm_timeout_frames

    def _to_waiting(self) -> None:
        if self._reference is not None and self.state == 'in_action':
            self._home = self._reference[2][:3].copy()  # SpineBase is joint 0
        self.state = 'waiting_for_rest'
        self._run_first = None
        self._run_length = 0
        self._reference = None
        self._window.clear()
        self._action_start = None

    def _track_rest(self, sig: np.ndarray, joints: np.ndarray) -> bool:
        """Extend or restart the current still run; True when it is ``rest_frames`` long."""
        cfg = self.cfg
        if self._run_first is not None:
            dx = float(np.linalg.norm(sig - self._run_first[0]))
            dth = float(np.linalg.norm(joints - self._run_first[1]))
            still = dx <= cfg.rest_image_tol and dth <= cfg.rest_joint_tol
        else:
            still = False
        if still:
            self._run_length += 1
        else:
            self._run_first = (sig, joints)
            self._run_length = 1
            self._run_start_index = self._last_index
        return self._run_length >= cfg.rest_frames

    def update(self, stream_index: int, signature: np.ndarray,
               joints: np.ndarray) -> Optional[StartEvent]:
        """Consume one frame; return a :class:`StartEvent` when a start is confirmed."""
        stream_index = int(stream_index)
        if self._last_index is not None and stream_index <= self._last_index:
            self.reset()
        self._last_index = stream_index
        sig = np.asarray(signature, dtype=np.float64).ravel()
        jts = np.asarray(joints, dtype=np.float64).ravel()
        if not np.all(np.isfinite(jts)):
            # An untracked skeleton cannot show rest: start the search afresh.
            self._run_first = None
            self._run_length = 0
            return None
        cfg = self.cfg
        rested = self._track_rest(sig, jts)
        if self.state == 'in_action':
            if stream_index - self._action_start >= cfg.action_frames:
                self._to_waiting()
            return None
        if self.state == 'waiting_for_rest':
            if rested and self._may_arm(jts):
                self._arm(stream_index, sig, jts)
            return None
        ref_index, ref_sig, ref_jts = self._reference
        dx = float(np.linalg.norm(sig - ref_sig))
        dth = float(np.linalg.norm(jts - ref_jts))
        if rested and self._run_start_index > ref_index and (
                dx > cfg.rest_image_tol or dth > cfg.rest_joint_tol):
            # Still again since after the reference, in a different pose: a drift, not a
            # pitch (a still run that began before the reference is the reference's own).
            self._arm(stream_index, sig, jts)
            return None
        self._window.append((stream_index, dx, dth))
        if len(self._window) < cfg.run_length:
            return None
        start, _, dth_start = self._window[0]
        run = np.array([w[1] for w in self._window])
        if all(start_conditions(run, dth_start, cfg)):
            self.state = 'in_action'
            self._action_start = start
            self._window.clear()
            return StartEvent(start_index=start, reference_index=ref_index,
                              detected_index=stream_index, dx=float(run[0]),
                              dtheta=float(dth_start))
        return None

    def _arm(self, stream_index: int, sig: np.ndarray, jts: np.ndarray) -> None:
        self.state = 'armed'
        self._home = None
        self._reference = (stream_index, sig, jts)
        self._window.clear()

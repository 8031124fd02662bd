"""The core's run-time settings and their checks (no torch: the node checks them first)."""

from dataclasses import dataclass, field

from pitch_predictor.kinect import WINDOW
from pitch_predictor.models.decision import MAX_ROW_OFFSET
from pitch_predictor.models.sampling import sampling_method as sampling_row
from pitch_predictor.start_detector import StartDetectorConfig

# The model inputs the core can feed: RGB features, joints, or both (two-stream).
INPUT_KINDS = ('rgb', 'joints', 'rgb+joints')

# How the backbone and the decisions run: ``torchscript`` traces them once per input
# shape, ``onnxruntime`` exports them to ONNX Runtime (CPU), both one call into C++ with
# the GIL released and checked against eager PyTorch when made; ``eager`` calls the
# PyTorch modules op by op (docs/node.md, "Where the time goes").
DECISION_BACKENDS = ('onnxruntime', 'torchscript', 'eager')


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
    ``max_missing_skeleton_fraction``: models that take joints (two-stream, joints-only):
    a window (or the part of it an early estimate has seen) with a larger share of frames
    without their own skeleton (held or none) is not decided.
    ``detector``: the start detector's settings.
    ``row_offset_top``/``row_offset_bottom``: the pitcher's row offsets
    (:func:`pitch_predictor.models.decision.apply_row_offset`), 0 = none.
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
    row_offset_top: float = 0.0
    row_offset_bottom: float = 0.0

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
            ('row_offset_top', abs(self.row_offset_top) <= MAX_ROW_OFFSET,
             f'in [-{MAX_ROW_OFFSET:g}, {MAX_ROW_OFFSET:g}]'),
            ('row_offset_bottom', abs(self.row_offset_bottom) <= MAX_ROW_OFFSET,
             f'in [-{MAX_ROW_OFFSET:g}, {MAX_ROW_OFFSET:g}]'),
        )
        for name, ok, expected in checks:
            if not ok:
                raise CoreConfigError(f'{name} = {getattr(self, name)!r} must be {expected}')

"""
Per-frame encoding, once on arrival: crop, start-detector signature, model encoding.

The model's encoding is ``model.encode_frames``: the backbone features and, for the
ConvGRU models, the first ConvGRU layer's input gates (the input convolution depends on
the frame alone, and was most of a decision's time when run at decision time).

The crop is :func:`pitch_predictor.models.preprocessing.crop_frames` (training's own), taken
from the image in the channel order it came in; only the small crop is converted to
RGB. The backbone runs in inference mode, through ONNX Runtime by default (one call into
C++ per frame: see docs/node.md, "Where the time goes").
"""

from dataclasses import dataclass
import time
from typing import Any
import warnings

import cv2
import numpy as np
from pitch_predictor.models.preprocessing import crop_frames, PreprocessConfig, PreprocessError
from pitch_predictor.models.preprocessing import test_transform
from pitch_predictor.runtime.messages import Pixels
from pitch_predictor.runtime.onnx_backend import MethodModule, onnx_callable
from pitch_predictor.start_detector import image_signature, StartDetectorConfig
import torch


@dataclass
class FramePayload:
    """What the core keeps of one frame: its detector signature and model features."""

    signature: Any
    features: Any
    arrival_s: float


class FrameEncoder:
    """
    Turn camera frames into :class:`FramePayload` for ``model`` (RGB backbone or none).

    ``rgb_features``: False for joints-only models (no backbone runs). ``backend``:
    'onnxruntime', 'torchscript' or 'eager' (see :mod:`pitch_predictor.runtime.settings`).
    """

    def __init__(self, model: torch.nn.Module, preprocess: PreprocessConfig,
                 device: torch.device, rgb_features: bool, backend: str = 'onnxruntime'
                 ) -> None:
        self.model = model
        self.preprocess = preprocess
        self.device = device
        self.rgb_features = rgb_features
        self._backbone = model.encode_frames
        self.encoded_shape: tuple = ()
        if rgb_features:
            example = torch.rand(1, 3, preprocess.output_size, preprocess.output_size,
                                 device=device)
            with torch.inference_mode():
                self.encoded_shape = tuple(model.encode_frames(example).shape[1:])
            if backend != 'eager':
                self._backbone = _compiled_backbone(model, preprocess, device, backend)
        self.compiled = self._backbone != model.encode_frames  # False: eager (or fell back)

    def encode(self, pixels: Pixels, detector: StartDetectorConfig) -> FramePayload:
        """Crop, signature and features of one image (raises PreprocessError if unusable)."""
        arrival = time.perf_counter()
        array = pixels.array
        if not isinstance(array, np.ndarray) or array.ndim != 3 or array.shape[2] != 3 \
                or array.dtype != np.uint8:
            raise PreprocessError(
                f'frame must be RGB uint8 (H, W, 3), got {getattr(array, "shape", None)} '
                f'{getattr(array, "dtype", type(array).__name__)}')
        crop = crop_frames(array, self.preprocess)[0]
        if pixels.bgr:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        elif not crop.flags.writeable:  # a view of the message: torch wants its own
            crop = crop.copy()
        signature = image_signature(crop, detector)
        features = None
        if self.rgb_features:
            with torch.inference_mode():
                image = test_transform(crop[None], self.preprocess, self.device)
                features = self.frame_features(image)[0]
        return FramePayload(signature, features, arrival)

    def frame_features(self, images: torch.Tensor) -> torch.Tensor:
        """Run the model's per-frame part on network input ``(N, 3, S, S)`` (N = 1 traced)."""
        return self._backbone(images)

    def joint_features(self, joints: np.ndarray) -> torch.Tensor:
        """Model input of one frame for joints-only models: the joints (25, 3) as a tensor."""
        return torch.from_numpy(np.array(joints)).to(self.device)


def _compiled_backbone(model: torch.nn.Module, preprocess: PreprocessConfig,
                       device: torch.device, backend: str) -> Any:
    """Return ``encode_frames`` compiled for one frame, or the eager one if that changes it."""
    example = torch.rand(1, 3, preprocess.output_size, preprocess.output_size,
                         device=device)
    try:
        if backend == 'onnxruntime':
            traced = onnx_callable(MethodModule(model, 'encode_frames'), (example,))
        else:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter('ignore', torch.jit.TracerWarning)
                warnings.simplefilter('ignore', FutureWarning)  # torch.jit is deprecated
                traced = torch.jit.trace(MethodModule(model, 'encode_frames'), example,
                                         check_trace=False)
        with torch.inference_mode():
            # Features are O(1): 1e-4 is float32 summation order, far below what changes
            # a decision (the decision's own check is on its logits, 1e-5).
            same = all(torch.allclose(traced(example), model.encode_frames(example), rtol=1e-4,
                                      atol=1e-4) for _ in range(3))  # past the profiling runs
    except Exception:  # noqa: BLE001 - tracing is an optimisation: fall back to eager
        return model.encode_frames
    return traced if same else model.encode_frames

"""
Decisions: the model's recurrent part and head over the window's test clips.

A final decision runs the Table II test clips of the window in one batch through
``forward_encoded`` (the frames' cached ``encode_frames``: the ConvGRU's input gates are
already computed, only its hidden convolutions and the head run) and takes
:func:`pitch_predictor.models.decision.mean_clip_probabilities` (the mean calibrated softmax).
An early estimate steps the streaming model over the frames seen so far, one batch per
group of clips that have seen as many frames.

Backends (``DECISION_BACKENDS``): 'torchscript' traces ``forward_encoded`` once per
clip batch shape, 'onnxruntime' exports it to ONNX Runtime once per shape: either is
one call into C++ per decision that keeps the GIL released throughout, instead of ~600
Python-level ops that each give the GIL up and wait to get it back from the frame
callbacks (docs/node.md, "Where the time goes"). A compiled decision is used only after
it matched eager PyTorch on test inputs (NaN joints included for models taking joints);
otherwise the eager modules run.
"""

import threading
from typing import Any, Callable, Dict, Optional, Sequence, Tuple
import warnings

import numpy as np
from pitch_predictor.kinect import NUM_BLOCKS
from pitch_predictor.models.decision import mean_clip_probabilities, prefix_groups
from pitch_predictor.runtime.onnx_backend import MethodModule, onnx_callable
import torch

# Compiled and eager logits must agree this closely (float32).
TRACE_ATOL = 1e-5


class ClipRunner:
    """
    Logits of clip batches for one model, eager or through cached traces.

    ``input_kind``: 'rgb', 'joints' or 'rgb+joints'. ``notify(key, message)`` reports a
    trace that did not match (the eager path is used from then on).
    """

    def __init__(self, model: torch.nn.Module, input_kind: str, backend: str,
                 notify: Callable[[str, str], None]) -> None:
        self.model = model
        self.input_kind = input_kind
        self.backend = backend
        self._notify = notify
        self._traces: Dict[Tuple, Any] = {}
        self._lock = threading.Lock()  # decisions on the worker, warm-up on the caller

    def logits(self, batch: torch.Tensor, joints: Optional[torch.Tensor]) -> torch.Tensor:
        """Logits (K, 9) of clips ``batch`` (K, T, ...) and their ``joints`` (two-stream)."""
        trace = self._trace_for(batch, joints) if self.backend != 'eager' else None
        if trace is not None:
            return trace(batch) if joints is None else trace(batch, joints)
        return self._eager(batch, joints)

    def warm_up(self, batch_shape: Sequence[int], device: torch.device) -> None:
        """Trace (and check) the decision for clip batches of ``batch_shape`` now."""
        if self.backend == 'eager':
            return
        batch = torch.rand(*batch_shape, device=device)
        joints = None
        if self.input_kind == 'rgb+joints':
            joints = torch.rand(*batch_shape[:2], 25, 3, device=device)
        self._trace_for(batch, joints)

    @property
    def compiled_shapes(self) -> int:
        """Clip batch shapes the decision runs compiled for (eager ones not counted)."""
        with self._lock:
            return sum(1 for trace in self._traces.values() if trace is not None)

    def _eager(self, batch: torch.Tensor, joints: Optional[torch.Tensor]) -> torch.Tensor:
        if self.input_kind == 'joints':
            return self.model(batch)
        if joints is not None:
            return self.model.forward_encoded(batch, joints)
        return self.model.forward_encoded(batch)

    def _trace_for(self, batch: torch.Tensor, joints: Optional[torch.Tensor]) -> Any:
        key = (tuple(batch.shape), batch.device, None if joints is None else tuple(joints.shape))
        with self._lock:
            if key not in self._traces:
                self._traces[key] = self._trace(batch, joints)
            return self._traces[key]

    def _trace(self, batch: torch.Tensor, joints: Optional[torch.Tensor]) -> Any:
        """Compile for these shapes; None (eager) unless it matches eager on test inputs."""
        inputs = (batch,) if joints is None else (batch, joints)
        method = 'forward' if self.input_kind == 'joints' else 'forward_encoded'
        example = tuple(torch.rand_like(x) for x in inputs)
        probes = [example]
        if joints is not None or self.input_kind == 'joints':
            # No skeleton for some frames: the joints (the only input of a joints model).
            gappy = example[-1].clone()
            gappy[:, ::3] = float('nan')
            probes.append((*example[:-1], gappy))
        try:
            if self.backend == 'onnxruntime':
                traced = onnx_callable(MethodModule(self.model, method), example)
            else:
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter('ignore', torch.jit.TracerWarning)
                    warnings.simplefilter('ignore', FutureWarning)  # torch.jit is deprecated
                    module = torch.jit.trace_module(self.model, {method: example},
                                                    check_trace=False)
                traced = getattr(module, method)
            with torch.inference_mode():
                # Every probe twice: TorchScript optimises on its first runs, so the
                # first real decision already gets the optimised graph.
                for probe in probes + probes:
                    expected = self._eager(probe[0], probe[1] if len(probe) > 1 else None)
                    if not torch.allclose(traced(*probe), expected, rtol=1e-5,
                                          atol=TRACE_ATOL):
                        raise ValueError(f'{self.backend} logits differ from eager PyTorch')
        except Exception as exc:  # tracing is an optimisation: never lose a decision to it
            self._notify('trace_failed', f'{self.backend} decision for clips '
                         f'{tuple(batch.shape)} not used ({exc}); running eager PyTorch')
            return None
        return traced


def final_probabilities(runner: ClipRunner, features: torch.Tensor,
                        clips: Sequence[np.ndarray], joints: Optional[torch.Tensor],
                        temperature: float) -> np.ndarray:
    """
    Mean calibrated softmax over the test clips of a full window (Table II rule).

    ``features``: (40, ...) the frames' ``encode_frames`` (RGB models) or (40, 25, 3)
    joints (joints models). ``joints``: two-stream models only, (40, 25, 3), NaN where no
    skeleton. Returns float64 (9,).
    """
    index = torch.as_tensor(np.stack(clips), device=features.device)
    with torch.inference_mode():
        logits = runner.logits(features[index], None if joints is None else joints[index])
        probabilities = mean_clip_probabilities(logits, temperature)
    return probabilities.double().cpu().numpy()


def early_probabilities(model: torch.nn.Module, features: torch.Tensor,
                        clips: Sequence[np.ndarray], joints: Optional[torch.Tensor],
                        temperature: float) -> np.ndarray:
    """Mean calibrated softmax of the streaming model over the clips' frames seen."""
    outputs = []
    with torch.inference_mode():
        for group in prefix_groups(clips, features.shape[0]):
            index = torch.as_tensor(group, device=features.device)
            batch = features[index]  # (k, L, ...)
            group_joints = None if joints is None else joints[index]
            state = model.init_state(batch.shape[0], features.device)
            for t in range(batch.shape[1]):
                if group_joints is None:
                    logits, state = model.step_encoded(batch[:, t], state)
                else:
                    logits, state = model.step_encoded(batch[:, t], group_joints[:, t],
                                                       state)
            outputs.append(logits)
        if not outputs:
            return np.full(NUM_BLOCKS, 1.0 / NUM_BLOCKS)
        return mean_clip_probabilities(torch.cat(outputs), temperature).double().cpu().numpy()

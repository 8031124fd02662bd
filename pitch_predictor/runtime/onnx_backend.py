"""
Run a module's forward through ONNX Runtime: the ``onnxruntime`` inference backend.

:func:`onnx_callable` exports ``module`` for fixed input shapes (the TorchScript-based
exporter, as ``training/export.py`` does) into memory and returns a function with the
module's call signature. ONNX Runtime runs it on the CPU with torch's thread count
(the node's ``torch_threads``) and keeps the GIL released while it runs.
"""

import io
from typing import Callable, Sequence
import warnings

import torch


def onnxruntime_usable(device: torch.device) -> bool:
    """Tell whether ONNX Runtime can run the model here (CPU, onnxruntime installed)."""
    if device.type != 'cpu':
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_callable(module: torch.nn.Module, example: Sequence[torch.Tensor]
                  ) -> Callable[..., torch.Tensor]:
    """Return ``module(*inputs)`` run by ONNX Runtime for inputs shaped like ``example``."""
    import onnxruntime

    names = [f'input{i}' for i in range(len(example))]
    buffer = io.BytesIO()
    # The exporter leaves every submodule in the mode of the module it was given: keep
    # each one's own mode (a model in eval mode must not come back in training mode).
    modes = {m: m.training for m in module.modules()}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')  # tracer and exporter notices, fixed shapes
            torch.onnx.export(module, tuple(example), buffer, input_names=names,
                              output_names=['output'], dynamo=False, opset_version=17)
    finally:
        for m, training in modes.items():
            m.training = training
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(buffer.getvalue(), options,
                                           providers=['CPUExecutionProvider'])

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        feed = {name: x.detach().cpu().numpy() for name, x in zip(names, inputs)}
        return torch.from_numpy(session.run(None, feed)[0])

    return run


class MethodModule(torch.nn.Module):
    """``model.<method>(*inputs)`` as a module's forward (what tracing and export record)."""

    def __init__(self, model: torch.nn.Module, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method
        self.train(model.training)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Call the wrapped method."""
        return getattr(self.model, self.method)(*inputs)

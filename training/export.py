"""
Export a trained run: the node's checkpoint and an ONNX file checked against PyTorch.

::

    python -m training.export runs/fast_convgru2d/model.pt \
        --out pitch_predictor/shipped_model/convgru2d_fast.pt --onnx runs/fast_convgru2d/model.onnx

The checkpoint is re-written in the model library's format (``save_checkpoint``) with
the export recorded in its meta; the ONNX graph takes one clip batch ``(B, T, 3, H, W)``
as input 'clips' (joints models: ``(B, T, 25, 3)``) with a dynamic batch axis and returns
'logits' ``(B, 9)``. Two-stream ('rgb+joints') models take two inputs, 'clips' and
'joints' ``(B, T, 25, 3)``; with ``--features`` 'features' (the backbone's cached
per-frame features ``(B, T, C, h, w)``) and 'joints'. Joints go in exactly as the node
holds them, raw Kinect camera space in metres with NaN for a missing joint or frame: the
graph masks NaN itself (IsNaN/Where), so nothing has to be cleaned before the call.
ONNX Runtime's output is compared with PyTorch's on the same inputs (joints with a lost
frame, a missing joint and a batch item without any skeleton) and the maximum absolute
difference of the logits and of the probabilities is reported.
"""

import argparse
import datetime
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
import warnings

from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
from pitch_predictor.models.checkpoint import save_checkpoint
from pitch_predictor.models.sampling import clip_length
import torch
from torch import nn


PathLike = Union[str, os.PathLike]


class ExportError(RuntimeError):
    """The ONNX export failed or its output disagrees with PyTorch."""


def example_joints(batch: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    """
    Return joints ``(B, T, 25, 3)`` like the node holds them: a skeleton, gaps as NaN.

    A standing skeleton about 2.5 m from the sensor plus noise; in batch item 0 the
    second frame is lost (all NaN) and one joint is missing from every frame; the last
    batch item has no skeleton at all (so the exported graph's NaN handling is checked).
    """
    joints = torch.randn(batch, steps, 25, 3, generator=generator) * 0.3
    joints = joints + torch.tensor([0.0, 0.0, 2.5])
    joints[0, 1 % steps] = float('nan')
    joints[0, :, 7] = float('nan')
    if batch > 1:
        joints[-1] = float('nan')
    return joints


def example_input(model: nn.Module, ckpt: Any, batch: int, seed: int = 0,
                  features: bool = False) -> Tuple[torch.Tensor, ...]:
    """
    Return random inputs of the model's shapes (a normalised-image-like range), as a tuple.

    RGB models: ``(clips,)``; joints models: ``(joints,)``; 'rgb+joints' models: ``(clips,
    joints)``, or with ``features`` ``(backbone features, joints)``.
    """
    generator = torch.Generator().manual_seed(seed)
    steps = clip_length(ckpt.sampling_method)
    kind = getattr(model, 'input_kind', 'rgb')
    if kind == 'joints':
        return (example_joints(batch, steps, generator),)
    size = ckpt.preprocess.output_size
    clips = torch.randn(batch, steps, 3, size, size, generator=generator)
    if kind != 'rgb+joints':
        return (clips,)
    joints = example_joints(batch, steps, generator)
    if features:
        with torch.no_grad():
            clips = model.backbone(clips.flatten(0, 1)).unflatten(0, (batch, steps))
    return (clips, joints)


class _FeaturesEntry(nn.Module):
    """A two-stream model's ``forward_features`` as ``forward`` (for tracing)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(feats, joints)


def input_names(model: nn.Module, features: bool = False) -> List[str]:
    """
    Return the ONNX graph's input names.

    ``['clips']`` (RGB clips, or joints for a joints model), and for 'rgb+joints' models
    ``['clips', 'joints']`` or, exported with ``features``, ``['features', 'joints']``.
    """
    if getattr(model, 'input_kind', 'rgb') != 'rgb+joints':
        return ['clips']
    return ['features' if features else 'clips', 'joints']


def export_onnx(model: nn.Module, example: Sequence[torch.Tensor], path: Path,
                features: bool = False) -> None:
    """
    Write ``model`` as ONNX (dynamic batch axis) with inputs :func:`input_names`.

    Output 'logits'. ``features``: export ``forward_features`` (two-stream models), whose
    first input is the backbone's cached per-frame features ``(B, T, C, h, w)``. Joints
    go in as the node holds them, NaN for missing: the graph masks them itself.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    names = input_names(model, features)
    # The exporter restores the traced module's train/eval mode on all its children: a
    # wrapper must be in the model's mode, or the model comes back in training mode.
    module = _FeaturesEntry(model).train(model.training) if features else model
    with warnings.catch_warnings():
        # Tracing unrolls the recurrent loop over T; the shape checks it warns about are
        # constant for the traced T, which is what the graph is for.
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.simplefilter('ignore', UserWarning)
        warnings.simplefilter('ignore', DeprecationWarning)  # the TorchScript exporter's notice
        axes = {name: {0: 'batch'} for name in names + ['logits']}
        try:
            torch.onnx.export(module, tuple(example), str(path), input_names=names,
                              output_names=['logits'], dynamo=False, opset_version=17,
                              dynamic_axes=axes)
        except Exception as exc:  # noqa: BLE001  (every exporter failure is reported alike)
            raise ExportError(f'{path}: ONNX export failed: {exc}') from exc


def compare_onnx(model: nn.Module, path: Path, inputs: Sequence[torch.Tensor],
                 features: bool = False) -> Dict[str, float]:
    """Run ONNX Runtime and PyTorch on ``inputs``; return the max abs differences."""
    import onnxruntime

    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    with torch.no_grad():
        expected = (model.forward_features(*inputs) if features else model(*inputs)).float()
    feed = {name: tensor.numpy() for name, tensor in zip(input_names(model, features), inputs)}
    got = torch.from_numpy(session.run(['logits'], feed)[0])
    return {
        'max_abs_diff_logits': float((got - expected).abs().max()),
        'max_abs_diff_probs': float((got.softmax(-1) - expected.softmax(-1)).abs().max()),
        'same_argmax': bool((got.argmax(-1) == expected.argmax(-1)).all()),
        'finite': bool(torch.isfinite(got).all()),
        'batch': int(inputs[0].shape[0]),
    }


def export(checkpoint: PathLike, out: Optional[PathLike] = None,
           onnx_path: Optional[PathLike] = None,
           *, tolerance: float = 1e-3, meta: Optional[Dict[str, Any]] = None,
           features: bool = False) -> Dict[str, Any]:
    """
    Re-save ``checkpoint`` to ``out`` and/or write and verify ONNX; return a report.

    ``features``: the ONNX graph of a two-stream model takes cached backbone features
    (``forward_features``) instead of clips.
    """
    checkpoint = Path(checkpoint)
    out = Path(out) if out is not None else None
    onnx_path = Path(onnx_path) if onnx_path is not None else None
    ckpt = load_checkpoint(checkpoint)
    model = build_model_from_checkpoint(ckpt, torch.device('cpu'))
    model.eval()
    if features and getattr(model, 'input_kind', 'rgb') != 'rgb+joints':
        raise ExportError(f'{checkpoint}: --features is for two-stream (rgb+joints) models')
    report: Dict[str, Any] = {'checkpoint': str(checkpoint), 'model': ckpt.model_name,
                              'sampling_method': ckpt.sampling_method,
                              'input_kind': getattr(model, 'input_kind', 'rgb')}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        export_meta = dict(ckpt.meta or {})
        export_meta.update(meta or {})
        export_meta['exported_from'] = str(checkpoint)
        export_meta['export_date'] = datetime.datetime.now(
            datetime.timezone.utc).isoformat(timespec='seconds')
        save_checkpoint(out, model, model_name=ckpt.model_name,
                        model_config=dict(ckpt.model_config), preprocess=ckpt.preprocess,
                        sampling_method=ckpt.sampling_method, meta=export_meta)
        # The copy must load and give the same outputs as the source.
        copy = build_model_from_checkpoint(load_checkpoint(out), torch.device('cpu'))
        probe = example_input(model, ckpt, 2)
        with torch.no_grad():
            report['checkpoint_max_abs_diff'] = float(
                (copy(*probe) - model(*probe)).abs().max())
        report['out'] = str(out)
        report['out_megabytes'] = out.stat().st_size / 1e6
    if onnx_path is not None:
        export_onnx(model, example_input(model, ckpt, 1, features=features), onnx_path,
                    features)
        # A batch size other than the traced one checks the dynamic axis too.
        report.update(compare_onnx(
            model, onnx_path, example_input(model, ckpt, 3, seed=1, features=features),
            features))
        report['onnx'] = str(onnx_path)
        report['onnx_inputs'] = input_names(model, features)
        report['onnx_megabytes'] = onnx_path.stat().st_size / 1e6
        if report['max_abs_diff_logits'] > tolerance or not report['finite']:
            raise ExportError(f'{onnx_path}: ONNX logits differ from PyTorch by '
                              f'{report["max_abs_diff_logits"]:.2e} > {tolerance:.0e}'
                              f'{"" if report["finite"] else " (or are not finite)"}')
    return report


def write_model_card(path: Path, report: Dict[str, Any], metrics: Dict[str, Any]) -> None:
    """Write the model card of an exported checkpoint from its run's ``metrics.json``."""
    test = metrics['test']
    source = {}
    data_meta = Path(metrics['data']) / 'meta.json'
    if data_meta.exists():
        source = json.loads(data_meta.read_text()).get('source', {})
    sim = source.get('pitchsim', {})
    per_block = ', '.join(f'{name[5:]}: {100 * acc:.0f}%' if acc is not None else f'{name[5:]}: -'
                          for name, acc in test['per_block_accuracy'].items())
    cfg = metrics['config']
    lines = [
        f'# Model card: {Path(report["out"]).name}',
        '',
        f'- **Network**: `{metrics["model"]}` ({metrics["num_parameters"] / 1e6:.2f} M '
        f'parameters), config `{json.dumps(metrics["model_config"])}`.',
        f'- **Input**: sampling method {metrics["sampling"]} (Table II) of the detected '
        f'40-frame window; {metrics["preprocess"]["crop_size"]} px centre crop stored at '
        f'{metrics["preprocess"]["stored_size"]} px, network input '
        f'{metrics["preprocess"]["output_size"]} px.',
        f'- **Data**: `{metrics["data"]}` built from the synthetic generator (pitchsim) with '
        f'seed {sim.get("seed", "?")}: {sim.get("participants", "?")} participants x 9 blocks x '
        f'{sim.get("trials_per_block", "?")} trials; split `{metrics["split"]}` '
        f'({metrics["num_train"]} train / {metrics["num_test"]} test trials).',
        f'- **Training**: `{metrics["command"]}` (config `{cfg["name"]}`, seed {cfg["seed"]}); '
        f'{metrics["epochs_run"]} epochs, {metrics["seconds_per_epoch"]:.1f} s/epoch, '
        f'{metrics["train_seconds"] / 60:.1f} min on {metrics["device"]} (2 shared cores).',
        f'- **Test accuracy** ({metrics["num_test"]} trials, mean softmax over the test '
        f'clips): **{100 * test["accuracy"]:.2f}%** (chance 11.1%); ECE {test["ece"]:.3f}; '
        f'NLL {test["nll"]:.3f}.',
        f'- **Per-block accuracy**: {per_block}.',
        f'- **Export**: checkpoint {report.get("out_megabytes", 0):.1f} MB, reloaded max |diff| '
        f'{report.get("checkpoint_max_abs_diff", float("nan")):.1e}; ONNX max |logit diff| '
        f'vs PyTorch {report.get("max_abs_diff_logits", float("nan")):.1e}.',
        f'- **Trained**: {metrics["date"]}; exported {datetime.date.today().isoformat()}.',
        '',
        'Limitations: trained and tested on synthetic trials only (no real Kinect data); '
        'the test trials come from the same participants and sessions as the training ones '
        '(within-subject). Reproduce with the command above, then '
        '`python -m training.export <run>/model.pt --out <this file> --card`.',
    ]
    path.write_text('\n'.join(lines) + '\n')


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Command line entry point; prints the report as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('checkpoint', type=Path, help="a run's model.pt")
    parser.add_argument('--out', type=Path, help='write the node checkpoint here')
    parser.add_argument('--onnx', type=Path, help='write and verify an ONNX file here')
    parser.add_argument('--features', action='store_true',
                        help='two-stream models: the ONNX graph takes cached backbone '
                        'features (forward_features) instead of clips')
    parser.add_argument('--tolerance', type=float, default=1e-3,
                        help='largest accepted |ONNX - PyTorch| on the logits')
    parser.add_argument('--card', action='store_true',
                        help='write MODEL_CARD.md next to --out from the run metrics.json')
    args = parser.parse_args(argv)
    if args.out is None and args.onnx is None:
        parser.error('nothing to do: give --out and/or --onnx')
    report = export(args.checkpoint, args.out, args.onnx, tolerance=args.tolerance,
                    features=args.features)
    if args.card:
        metrics_path = args.checkpoint.parent / 'metrics.json'
        if args.out is None or not metrics_path.exists():
            parser.error('--card needs --out and metrics.json in the run folder')
        write_model_card(args.out.parent / 'MODEL_CARD.md', report,
                         json.loads(metrics_path.read_text()))
    print(json.dumps(report, indent=2))
    return report


if __name__ == '__main__':
    main()

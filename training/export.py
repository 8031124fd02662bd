"""
Export a trained run: the node's checkpoint and an ONNX file checked against PyTorch.

::

    python -m training.export runs/fast_convgru2d/model.pt \
        --out pitch_predictor/shipped_model/convgru2d_fast.pt --onnx runs/fast_convgru2d/model.onnx

The checkpoint is re-written in the model library's format (``save_checkpoint``) with
the export recorded in its meta; the ONNX graph takes one clip batch ``(B, T, 3, H, W)``
(joints models: ``(B, T, 25, 3)``) with a dynamic batch axis and returns logits
``(B, 9)``. ONNX Runtime's output is compared with PyTorch's on the same inputs and the
maximum absolute difference of the logits and of the probabilities is reported.
"""

import argparse
import datetime
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union
import warnings

from pitch_predictor.checkpoint import build_model_from_checkpoint, load_checkpoint
from pitch_predictor.checkpoint import save_checkpoint
from pitch_predictor.sampling import clip_length
import torch
from torch import nn


PathLike = Union[str, os.PathLike]


class ExportError(RuntimeError):
    """The ONNX export failed or its output disagrees with PyTorch."""


def example_input(model: nn.Module, ckpt: Any, batch: int, seed: int = 0) -> torch.Tensor:
    """Return a random input batch of the model's shape (a normalised-image-like range)."""
    generator = torch.Generator().manual_seed(seed)
    steps = clip_length(ckpt.sampling_method)
    if getattr(model, 'input_kind', 'rgb') == 'joints':
        return torch.randn(batch, steps, 25, 3, generator=generator)
    size = ckpt.preprocess.output_size
    return torch.randn(batch, steps, 3, size, size, generator=generator)


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Write ``model`` as ONNX (dynamic batch axis), input 'clips', output 'logits'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # Tracing unrolls the recurrent loop over T; the shape checks it warns about are
        # constant for the traced T, which is what the graph is for.
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.simplefilter('ignore', UserWarning)
        warnings.simplefilter('ignore', DeprecationWarning)  # the TorchScript exporter's notice
        try:
            torch.onnx.export(model, (example,), str(path), input_names=['clips'],
                              output_names=['logits'], dynamo=False, opset_version=17,
                              dynamic_axes={'clips': {0: 'batch'}, 'logits': {0: 'batch'}})
        except Exception as exc:  # noqa: BLE001  (every exporter failure is reported alike)
            raise ExportError(f'{path}: ONNX export failed: {exc}') from exc


def compare_onnx(model: nn.Module, path: Path, inputs: torch.Tensor) -> Dict[str, float]:
    """Run ONNX Runtime and PyTorch on ``inputs``; return the max abs differences."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    with torch.no_grad():
        expected = model(inputs).float()
    got = torch.from_numpy(session.run(['logits'], {'clips': inputs.numpy()})[0])
    return {
        'max_abs_diff_logits': float((got - expected).abs().max()),
        'max_abs_diff_probs': float((got.softmax(-1) - expected.softmax(-1)).abs().max()),
        'same_argmax': bool((got.argmax(-1) == expected.argmax(-1)).all()),
        'batch': int(inputs.shape[0]),
    }


def export(checkpoint: PathLike, out: Optional[PathLike] = None,
           onnx_path: Optional[PathLike] = None,
           *, tolerance: float = 1e-3, meta: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Re-save ``checkpoint`` to ``out`` and/or write and verify ONNX; return a report."""
    checkpoint = Path(checkpoint)
    out = Path(out) if out is not None else None
    onnx_path = Path(onnx_path) if onnx_path is not None else None
    ckpt = load_checkpoint(checkpoint)
    model = build_model_from_checkpoint(ckpt, torch.device('cpu'))
    model.eval()
    report: Dict[str, Any] = {'checkpoint': str(checkpoint), 'model': ckpt.model_name,
                              'sampling_method': ckpt.sampling_method}
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
            report['checkpoint_max_abs_diff'] = float((copy(probe) - model(probe)).abs().max())
        report['out'] = str(out)
        report['out_megabytes'] = out.stat().st_size / 1e6
    if onnx_path is not None:
        export_onnx(model, example_input(model, ckpt, 1), onnx_path)
        # A batch size other than the traced one checks the dynamic axis too.
        report.update(compare_onnx(model, onnx_path, example_input(model, ckpt, 3, seed=1)))
        report['onnx'] = str(onnx_path)
        report['onnx_megabytes'] = onnx_path.stat().st_size / 1e6
        if report['max_abs_diff_logits'] > tolerance:
            raise ExportError(f'{onnx_path}: ONNX logits differ from PyTorch by '
                              f'{report["max_abs_diff_logits"]:.2e} > {tolerance:.0e}')
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
    parser.add_argument('--tolerance', type=float, default=1e-3,
                        help='largest accepted |ONNX - PyTorch| on the logits')
    parser.add_argument('--card', action='store_true',
                        help='write MODEL_CARD.md next to --out from the run metrics.json')
    args = parser.parse_args(argv)
    if args.out is None and args.onnx is None:
        parser.error('nothing to do: give --out and/or --onnx')
    report = export(args.checkpoint, args.out, args.onnx, tolerance=args.tolerance)
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

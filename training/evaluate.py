"""
Test-time evaluation with Table II averaging: mean softmax over the test clips.

The decision over the clips is :func:`pitch_predictor.models.decision.mean_clip_probabilities`
(the node's too), with the checkpoint's calibration temperature. For a model with a
per-frame backbone (RGB and two-stream) the backbone (layers 1-5) runs once on the 40
frames of each trial's window; every test clip then only reruns the recurrent part and
the head on its frames' features (``forward_features``; a two-stream model also gets the
joints of the same frames). This gives the same numbers as calling ``model(clip)`` per
clip, for a fraction of the cost.

Evaluate a checkpoint on a cache (a miss set reports accuracy against the actual block,
``labels``, and against the block aimed at, ``intended``)::

    python -m training.evaluate --model RUN/model.pt --data data/synthetic/cache_fast_miss \
        [--split all|paper|lopo:P] [--out metrics_miss.json]
"""

import argparse
import json
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, TYPE_CHECKING

import numpy as np
from pitch_predictor.kinect import CLASS_NAMES, WINDOW
from pitch_predictor.models.decision import checkpoint_temperature, mean_clip_probabilities
from pitch_predictor.models.preprocessing import PreprocessConfig, test_transform
from pitch_predictor.models.sampling import test_clip_indices
import torch
from torch import nn
from training.dataset import window_frames, window_joints
from training.metrics import summarize

if TYPE_CHECKING:  # only for annotations
    from pitch_predictor.data.cache import TrialCache

# Called on the normalised windows (n, 40, 3, H, W) before the model sees them (on the
# joints (n, 40, 25, 3) of a joints-only model).
WindowPerturbation = Callable[[torch.Tensor], torch.Tensor]

INPUT_KINDS = ('rgb', 'joints', 'rgb+joints')


def model_input_kind(model: nn.Module) -> str:
    """Return 'rgb', 'joints' or 'rgb+joints' (what the model's forward expects)."""
    kind = getattr(model, 'input_kind', 'rgb')
    if kind not in INPUT_KINDS:
        raise ValueError(f'{type(model).__name__}: unknown input_kind {kind!r}')
    return kind


@torch.no_grad()
def clip_logits(model: nn.Module, windows: Optional[torch.Tensor], sampling_method: int,
                joints: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    Return the logits of every test clip of the method: ``(K, n, 9)``.

    ``windows``: normalised frames ``(n, 40, 3, H, W)`` (RGB and two-stream models) or,
    for a joints-only model, its joints ``(n, 40, 25, 3)``; ``joints``: the windows'
    joints ``(n, 40, 25, 3)`` (two-stream models only).
    """
    kind = model_input_kind(model)
    if kind == 'rgb+joints' and joints is None:
        raise ValueError('a two-stream model needs the joints of the windows too')
    steps = windows.shape[1]
    clips = [torch.as_tensor(idx, device=windows.device)
             for idx in test_clip_indices(sampling_method, steps)]
    if kind == 'joints' or not hasattr(model, 'forward_features'):
        return torch.stack([model(windows[:, idx]).float() for idx in clips])
    n = windows.shape[0]
    feats = model.backbone(windows.flatten(0, 1))
    feats = feats.reshape(n, steps, *feats.shape[1:])
    if kind == 'rgb+joints':
        return torch.stack([model.forward_features(feats[:, idx], joints[:, idx]).float()
                            for idx in clips])
    return torch.stack([model.forward_features(feats[:, idx]).float() for idx in clips])


@torch.no_grad()
def predict_windows(model: nn.Module, windows: torch.Tensor, sampling_method: int,
                    joints: Optional[torch.Tensor] = None, temperature: float = 1.0,
                    ) -> torch.Tensor:
    """Return class probabilities ``(n, 9)``: the decision over the method's test clips."""
    return mean_clip_probabilities(clip_logits(model, windows, sampling_method, joints),
                                   temperature, clip_dim=0)


@torch.no_grad()
def trial_clip_logits(model: nn.Module, cache: 'TrialCache', trials: np.ndarray,
                      sampling_method: int, preprocess: PreprocessConfig,
                      device: torch.device, *, batch_trials: int = 8,
                      perturb: Optional[WindowPerturbation] = None,
                      load_frames: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                      autocast: bool = False) -> np.ndarray:
    """
    Return the test clips' logits ``(K, len(trials), 9)`` for cached trials, in eval mode.

    ``load_frames(trials) -> uint8 (n, 40, S, S, 3)`` replaces the plain window read
    (the frame-rate test uses it; a two-stream model then still gets the plain window's
    joints); ``perturb`` edits the normalised windows (images, or a joints model's joints).
    """
    was_training = model.training
    model.eval()
    kind = model_input_kind(model)
    out = []
    for begin in range(0, len(trials), batch_trials):
        chunk = np.asarray(trials[begin:begin + batch_trials])
        joints = None
        if kind == 'joints':
            windows = torch.from_numpy(window_joints(cache, chunk)).to(device)
        else:
            crops = window_frames(cache, chunk) if load_frames is None else load_frames(chunk)
            crops = torch.from_numpy(crops).to(device)
            windows = test_transform(crops, preprocess, device=device)
            if kind == 'rgb+joints':
                joints = torch.from_numpy(window_joints(cache, chunk)).to(device)
        if perturb is not None:
            windows = perturb(windows)
        with torch.autocast(device.type, dtype=torch.bfloat16,
                            enabled=autocast and device.type == 'cuda'):
            out.append(clip_logits(model, windows, sampling_method, joints).float().cpu())
    model.train(was_training)
    if not out:
        return np.zeros((len(test_clip_indices(sampling_method)), 0, 9), dtype=np.float32)
    return torch.cat(out, dim=1).numpy().astype(np.float32)


def decide(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Return probabilities ``(n, 9)`` from clip logits ``(K, n, 9)`` (decision.py's rule)."""
    return mean_clip_probabilities(torch.from_numpy(np.asarray(logits)), temperature,
                                   clip_dim=0).numpy()


@torch.no_grad()
def predict_trials(model: nn.Module, cache: 'TrialCache', trials: np.ndarray,
                   sampling_method: int, preprocess: PreprocessConfig,
                   device: torch.device, *, batch_trials: int = 8,
                   perturb: Optional[WindowPerturbation] = None,
                   load_frames: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                   autocast: bool = False, temperature: float = 1.0) -> np.ndarray:
    """Return probabilities ``(len(trials), 9)`` for cached trials (see trial_clip_logits)."""
    logits = trial_clip_logits(model, cache, trials, sampling_method, preprocess, device,
                               batch_trials=batch_trials, perturb=perturb,
                               load_frames=load_frames, autocast=autocast)
    return decide(logits, temperature).astype(np.float32)


@torch.no_grad()
def anticipation_probabilities(model: nn.Module, cache: 'TrialCache', trials: np.ndarray,
                               sampling_method: int, preprocess: PreprocessConfig,
                               device: torch.device, *, batch_trials: int = 8,
                               temperature: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """
    Return the streaming estimate after every clip step, averaged over the test clips.

    Needs a forward-only model (``streamable``; a two-stream one steps its joints too).
    Returns ``fractions`` (T,), the mean fraction of the 40-frame window seen at step k
    (frame index + 1) / 40, and ``probs`` (n, T, 9); the last step equals the full-clip
    prediction.
    """
    if not getattr(model, 'streamable', False):
        raise ValueError(f'{type(model).__name__} is not streamable (forward-only models are)')
    model.eval()
    two_stream = model_input_kind(model) == 'rgb+joints'
    clips = test_clip_indices(sampling_method)
    fractions = np.mean([(clip + 1) / WINDOW for clip in clips], axis=0)
    out = []
    for begin in range(0, len(trials), batch_trials):
        chunk = np.asarray(trials[begin:begin + batch_trials])
        windows = test_transform(torch.from_numpy(window_frames(cache, chunk)).to(device),
                                 preprocess, device=device)
        joints = torch.from_numpy(window_joints(cache, chunk)).to(device) if two_stream \
            else None
        n, t = windows.shape[:2]
        feats = model.backbone(windows.flatten(0, 1))
        feats = feats.reshape(n, t, *feats.shape[1:])
        logits = []  # (K, steps, n, 9)
        for clip in clips:
            state = model.init_state(n, device)
            steps = []
            for frame in clip:
                frame = int(frame)
                if two_stream:
                    step, state = model.step_features(feats[:, frame], joints[:, frame],
                                                      state)
                else:
                    step, state = model.step_features(feats[:, frame], state)
                steps.append(step.float())
            logits.append(torch.stack(steps))
        probs = mean_clip_probabilities(torch.stack(logits), temperature, clip_dim=0)
        out.append(probs.permute(1, 0, 2).cpu().numpy())
    return fractions, np.concatenate(out)


def summarize_logits(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0,
                     ) -> Dict[str, Any]:
    """
    Return ``metrics.summarize`` of the decision at ``temperature``, plus the uncalibrated one.

    ``logits``: the test clips' ``(K, n, 9)``. The extra keys: ``temperature`` and
    ``uncalibrated`` (accuracy, ECE and NLL at T = 1).
    """
    labels = np.asarray(labels)
    metrics = summarize(decide(logits, temperature), labels, CLASS_NAMES)
    raw = summarize(decide(logits, 1.0), labels, CLASS_NAMES)
    metrics['temperature'] = float(temperature)
    metrics['uncalibrated'] = {k: raw[k] for k in ('accuracy', 'ece', 'nll')}
    return metrics


def cache_intended(cache: 'TrialCache') -> Optional[np.ndarray]:
    """Return the cache's intended blocks (1..9) per trial, None if it records none."""
    value = getattr(cache, 'intended', None)
    if value is None and (Path(cache.folder) / 'intended.npy').exists():
        value = np.load(Path(cache.folder) / 'intended.npy', mmap_mode='r')
    return None if value is None else np.asarray(value, dtype=np.int64)


def select_trials(cache: 'TrialCache', split: str) -> np.ndarray:
    """Return every trial ('all') or the test part of a training split's name."""
    if split == 'all':
        return np.arange(len(cache), dtype=np.int64)
    from training.splits import make_split
    return make_split(cache, split).test


def evaluate_on_cache(model: nn.Module, cache: 'TrialCache', trials: np.ndarray,
                      sampling_method: int, preprocess: PreprocessConfig,
                      device: torch.device, temperature: float = 1.0) -> Dict[str, Any]:
    """Return accuracy against the actual and the intended block, with counts."""
    from training.metrics import actual_and_intended
    kind = model_input_kind(model)
    if kind != 'joints' and cache.preprocess.stored_size != preprocess.stored_size:
        raise ValueError(f'{cache.folder}: cache stores {cache.preprocess.stored_size}px '
                         f'crops, the model was trained on {preprocess.stored_size}px')
    probs = predict_trials(model, cache, trials, sampling_method, preprocess, device,
                           temperature=temperature)
    intended = cache_intended(cache)
    report = actual_and_intended(probs, np.asarray(cache.labels)[trials],
                                 None if intended is None else intended[trials], CLASS_NAMES)
    report.update(data=str(cache.folder), temperature=float(temperature))
    return report


def evaluate_checkpoint(model_path: str, data: str, split: str = 'all',
                        device: str = 'cpu') -> Dict[str, Any]:
    """Evaluate a checkpoint (with its temperature) on a cache; return the report."""
    from pitch_predictor.data.cache import TrialCache
    from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
    ckpt = load_checkpoint(model_path)
    torch_device = torch.device(device)
    model = build_model_from_checkpoint(ckpt, torch_device)
    cache = TrialCache(data)
    report = evaluate_on_cache(model, cache, select_trials(cache, split),
                               ckpt.sampling_method, ckpt.preprocess, torch_device,
                               checkpoint_temperature(ckpt.meta))
    report.update(model=str(model_path), model_name=ckpt.model_name, split=split)
    return report


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Command line: evaluate a checkpoint on a cache, print and optionally save JSON."""
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint on a TrialCache '
                                     '(accuracy against the actual and the intended block)')
    parser.add_argument('--model', required=True, help='model.pt of a run')
    parser.add_argument('--data', required=True, help='TrialCache folder (e.g. a miss set)')
    parser.add_argument('--split', default='all',
                        help="'all' (default), or the test part of 'paper' / 'lopo:<P>'")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', default='', help='write the report as JSON here')
    args = parser.parse_args(argv)
    report = evaluate_checkpoint(args.model, args.data, args.split, args.device)
    actual = report['actual']
    line = (f'{report["num_trials"]} trials: accuracy against the actual block '
            f'{actual["accuracy"]:.4f}')
    if report['intended'] is not None:
        misses = report['misses']
        line += (f', against the intended block {report["intended"]["accuracy"]:.4f}; '
                 f'{misses["num_trials"]} misses: {misses["correct_actual"]} predicted '
                 f'where the ball went, {misses["correct_intended"]} where it was aimed')
    print(line)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == '__main__':
    main()

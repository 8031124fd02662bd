"""
Test-time evaluation with Table II averaging: mean softmax over the test clips.

For an RGB model the per-frame backbone (layers 1-5) runs once on the 40 frames of
each trial's window; every test clip then only reruns the recurrent part and the
head on its frames' features (``forward_features``). This gives the same numbers as
calling ``model(clip)`` per clip, for a fraction of the cost.
"""

from typing import Callable, Optional, Tuple, TYPE_CHECKING

import numpy as np
from pitch_predictor.kinect import WINDOW
from pitch_predictor.preprocessing import PreprocessConfig, test_transform
from pitch_predictor.sampling import test_clip_indices
import torch
from torch import nn
from training.dataset import window_frames, window_joints

if TYPE_CHECKING:  # only for annotations
    from pitch_predictor.data.cache import TrialCache

# Called on the normalised windows (n, 40, 3, H, W) before the model sees them.
WindowPerturbation = Callable[[torch.Tensor], torch.Tensor]


def model_input_kind(model: nn.Module) -> str:
    """Return 'rgb' or 'joints' (what the model's forward expects)."""
    return getattr(model, 'input_kind', 'rgb')


@torch.no_grad()
def predict_windows(model: nn.Module, windows: torch.Tensor, sampling_method: int,
                    ) -> torch.Tensor:
    """
    Return class probabilities (n, 9) averaged over the method's test clips.

    ``windows`` are the model's inputs for the whole 40-frame window: normalised
    frames (n, 40, 3, H, W) for RGB models or joints (n, 40, 25, 3).
    """
    clips = [torch.as_tensor(idx, device=windows.device) for idx in
             test_clip_indices(sampling_method, windows.shape[1])]
    if model_input_kind(model) == 'joints' or not hasattr(model, 'forward_features'):
        probs = [model(windows[:, idx]).float().softmax(dim=-1) for idx in clips]
        return torch.stack(probs).mean(dim=0)
    n, t = windows.shape[:2]
    feats = model.backbone(windows.flatten(0, 1))
    feats = feats.reshape(n, t, *feats.shape[1:])
    probs = [model.forward_features(feats[:, idx]).float().softmax(dim=-1) for idx in clips]
    return torch.stack(probs).mean(dim=0)


@torch.no_grad()
def predict_trials(model: nn.Module, cache: 'TrialCache', trials: np.ndarray,
                   sampling_method: int, preprocess: PreprocessConfig,
                   device: torch.device, *, batch_trials: int = 8,
                   perturb: Optional[WindowPerturbation] = None,
                   load_frames: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                   autocast: bool = False) -> np.ndarray:
    """
    Return probabilities (len(trials), 9) for cached trials, in eval mode.

    ``load_frames(trials) -> uint8 (n, 40, S, S, 3)`` replaces the plain window read
    (the frame-rate test uses it); ``perturb`` edits the normalised windows.
    """
    was_training = model.training
    model.eval()
    kind = model_input_kind(model)
    out = []
    for begin in range(0, len(trials), batch_trials):
        chunk = np.asarray(trials[begin:begin + batch_trials])
        if kind == 'joints':
            windows = torch.from_numpy(window_joints(cache, chunk)).to(device)
        else:
            crops = window_frames(cache, chunk) if load_frames is None else load_frames(chunk)
            crops = torch.from_numpy(crops).to(device)
            windows = test_transform(crops, preprocess, device=device)
        if perturb is not None:
            windows = perturb(windows)
        with torch.autocast(device.type, dtype=torch.bfloat16,
                            enabled=autocast and device.type == 'cuda'):
            out.append(predict_windows(model, windows, sampling_method).cpu().numpy())
    model.train(was_training)
    if not out:
        return np.zeros((0, 9), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


@torch.no_grad()
def anticipation_probabilities(model: nn.Module, cache: 'TrialCache', trials: np.ndarray,
                               sampling_method: int, preprocess: PreprocessConfig,
                               device: torch.device, *, batch_trials: int = 8,
                               ) -> Tuple[np.ndarray, np.ndarray]:
    """
    Return the streaming estimate after every clip step, averaged over the test clips.

    Needs a forward-only model (``streamable``). Returns ``fractions`` (T,), the mean
    fraction of the 40-frame window seen at step k (frame index + 1) / 40, and
    ``probs`` (n, T, 9); the last step equals the full-clip prediction.
    """
    if not getattr(model, 'streamable', False):
        raise ValueError(f'{type(model).__name__} is not streamable (forward-only models are)')
    model.eval()
    clips = test_clip_indices(sampling_method)
    steps = len(clips[0])
    fractions = np.mean([(clip + 1) / WINDOW for clip in clips], axis=0)
    out = []
    for begin in range(0, len(trials), batch_trials):
        chunk = np.asarray(trials[begin:begin + batch_trials])
        windows = test_transform(torch.from_numpy(window_frames(cache, chunk)).to(device),
                                 preprocess, device=device)
        n, t = windows.shape[:2]
        feats = model.backbone(windows.flatten(0, 1))
        feats = feats.reshape(n, t, *feats.shape[1:])
        probs = torch.zeros(n, steps, 9, device=device)
        for clip in clips:
            state = model.init_state(n, device)
            for k, frame in enumerate(clip):
                logits, state = model.step_features(feats[:, int(frame)], state)
                probs[:, k] += logits.float().softmax(dim=-1) / len(clips)
        out.append(probs.cpu().numpy())
    return fractions, np.concatenate(out)

"""
Image geometry and the paper's train/test preprocessing (Section IV-B): one source of truth.

Three stages, each one function used by every caller:

1. :func:`crop_frames` (numpy, cv2): camera frame -> the centre square that spans
   ``crop_size / frame_height`` of the frame's height -> resized to ``stored_size``.
   The cache builder stores its output, and the node runs it on every arriving frame.
2. :func:`test_transform` (torch): stored crops -> resize to ``output_size`` -> [0, 1] ->
   ImageNet normalisation. Used by evaluation, training's eval loop and the node.
3. :func:`train_transform` (torch, batched, GPU-friendly): per clip one random crop of
   ``round(S * train_crop_fraction)`` pixels, resize to ``output_size``, colour jitter
   (brightness, contrast, saturation, hue, applied in that order), normalisation.
   Every frame of a clip gets the same crop and jitter parameters.

Paper geometry, read literally with [13]'s recorder (colour stored at 640x360, 1/3 of the
Kinect's 1920x1080): a 240x240 centre crop of the 640x360 frame (``frame_height=360``,
``crop_size=240``), i.e. the central 720x720 of the 1080p image, whatever size the camera
delivers; random 235x235 crop, 224x224 network input. The fast configuration takes the
same field of view, stores it at 120x120 and feeds 112x112 to the network.
"""

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Optional, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale.
_LUMA = (0.2989, 0.587, 0.114)

ArrayLike = Union[np.ndarray, torch.Tensor]


class PreprocessError(ValueError):
    """A frame or clip has the wrong shape, dtype or size for the preprocessing."""


@dataclass
class PreprocessConfig:
    """
    Geometry and augmentation settings; serialisable with ``dataclasses.asdict``.

    ``frame_height``, ``crop_size``: the centre crop is ``crop_size`` pixels of a frame
    ``frame_height`` pixels high (the paper's 240 of [13]'s 360): its side is the fraction
    ``crop_size / frame_height`` of any camera frame's height, so every camera size gives
    the same field of view.
    ``stored_size``: side the crop is stored at (cache, node buffer).
    ``output_size``: side of the network input.
    ``train_crop_fraction``: random crop side / stored side during training (235/240).
    ``jitter``: (brightness, contrast, saturation, hue) ranges as torchvision ColorJitter.
    ``mean``, ``std``: per-channel normalisation of [0, 1] RGB.
    """

    frame_height: int = 360
    crop_size: int = 240
    stored_size: int = 240
    output_size: int = 224
    train_crop_fraction: float = 235.0 / 240.0
    jitter: Tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.1)
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        """Normalise sequences to tuples and check the values are usable."""
        self.jitter = tuple(float(v) for v in self.jitter)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        for name in ('frame_height', 'crop_size', 'stored_size', 'output_size'):
            if int(getattr(self, name)) <= 0:
                raise PreprocessError(f'PreprocessConfig.{name} must be > 0')
        if self.crop_size > self.frame_height:
            raise PreprocessError(
                f'PreprocessConfig.crop_size ({self.crop_size}) exceeds frame_height '
                f'({self.frame_height}): the crop is a part of the frame height')
        if not 0.0 < self.train_crop_fraction <= 1.0:
            raise PreprocessError('PreprocessConfig.train_crop_fraction must be in (0, 1]')
        if len(self.jitter) != 4 or len(self.mean) != 3 or len(self.std) != 3:
            raise PreprocessError('PreprocessConfig: jitter needs 4 values, mean/std 3 each')

    def to_dict(self) -> dict:
        """Return a plain dict (lists, numbers) for checkpoints, JSON and YAML."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'PreprocessConfig':
        """Build from a dict as written by :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise PreprocessError(f'unknown PreprocessConfig fields: {unknown}')
        return cls(**dict(values))


def paper_preprocess() -> PreprocessConfig:
    """Return the paper's geometry: 240 centre crop of 360, stored at 240, 224 input."""
    return PreprocessConfig(frame_height=360, crop_size=240, stored_size=240, output_size=224)


def fast_preprocess() -> PreprocessConfig:
    """Return the fast geometry: the same field of view stored at 120, 112 input."""
    return PreprocessConfig(frame_height=360, crop_size=240, stored_size=120, output_size=112)


def crop_box(width: int, height: int, cfg: PreprocessConfig) -> Tuple[int, int, int]:
    """
    Return ``(x0, y0, side)`` of the centre crop in a ``width`` x ``height`` camera frame.

    The side is ``crop_size / frame_height`` of the frame's height (rounded to a pixel);
    raises :class:`PreprocessError` when the frame is too narrow for it.
    """
    if height <= 0 or width <= 0:
        raise PreprocessError(f'crop_frames got an empty frame of {width}x{height}')
    side = int(round(cfg.crop_size * height / cfg.frame_height))
    if side > width:
        raise PreprocessError(
            f'frame {width}x{height} is too narrow: the centre crop needs {side} px '
            f'({cfg.crop_size}/{cfg.frame_height} of the height)')
    return (width - side) // 2, (height - side) // 2, side


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    # INTER_AREA averages source pixels when shrinking (no aliasing); it is blocky when
    # enlarging, where INTER_LINEAR is the better choice.
    shrinking = width <= image.shape[1] and height <= image.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def crop_frames(frames: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """
    Crop camera frames to the stored square crops.

    ``frames``: RGB uint8 ``(N, H, W, 3)`` or a single ``(H, W, 3)`` frame, any size.
    Returns uint8 ``(N, stored_size, stored_size, 3)`` (N = 1 for a single frame): the
    centre square of :func:`crop_box`, resized to ``stored_size`` with ``cv2.INTER_AREA``
    (one resize of the crop only: the rest of the frame is never touched).
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise PreprocessError(
            f'crop_frames expects RGB frames (N, H, W, 3) or (H, W, 3), got {frames.shape}')
    if frames.dtype != np.uint8:
        raise PreprocessError(f'crop_frames expects uint8 frames, got {frames.dtype}')
    n, height, width = frames.shape[:3]
    x0, y0, side = crop_box(width, height, cfg)
    crops = frames[:, y0:y0 + side, x0:x0 + side]
    if side == cfg.stored_size:
        return np.ascontiguousarray(crops)
    out = np.empty((n, cfg.stored_size, cfg.stored_size, 3), dtype=np.uint8)
    for i in range(n):
        out[i] = _resize(np.ascontiguousarray(crops[i]), cfg.stored_size, cfg.stored_size)
    return out


def _as_uint8_tensor(images: ArrayLike, name: str, min_dims: int) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(
        images, np.ndarray) else images
    if not isinstance(tensor, torch.Tensor):
        raise PreprocessError(f'{name} expects a numpy array or torch tensor, got '
                              f'{type(images).__name__}')
    if tensor.dtype != torch.uint8:
        raise PreprocessError(f'{name} expects uint8 images, got {tensor.dtype}')
    if tensor.dim() < min_dims or tensor.shape[-1] != 3 or tensor.shape[-2] != tensor.shape[-3]:
        raise PreprocessError(
            f'{name} expects square RGB crops (..., S, S, 3), got {tuple(tensor.shape)}')
    return tensor


def _normalise(images: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    mean = torch.tensor(cfg.mean, dtype=images.dtype, device=images.device).view(3, 1, 1)
    std = torch.tensor(cfg.std, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images - mean) / std


def _resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize float ``(N, 3, s, s)`` images to ``size`` (bilinear, antialiased)."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode='bilinear', align_corners=False,
                         antialias=True)


def test_transform(crops: ArrayLike, cfg: PreprocessConfig,
                   device: Optional[Union[str, torch.device]] = None) -> torch.Tensor:
    """
    Turn stored crops into network input: the paper's test preprocessing.

    ``crops``: uint8 ``(..., S, S, 3)`` numpy array or tensor (S is read from the input).
    Returns float32 ``(..., 3, output_size, output_size)`` on ``device`` (default: the
    tensor's device, CPU for numpy): bilinear antialiased resize, scale to [0, 1],
    ImageNet normalisation.
    """
    tensor = _as_uint8_tensor(crops, 'test_transform', 3)
    if device is not None:
        tensor = tensor.to(device)
    lead = tensor.shape[:-3]
    size = tensor.shape[-2]
    images = tensor.reshape(-1, size, size, 3).permute(0, 3, 1, 2).float().div_(255.0)
    images = _normalise(_resize_square(images, cfg.output_size), cfg)
    return images.reshape(*lead, 3, cfg.output_size, cfg.output_size).contiguous()


test_transform.__test__ = False  # a preprocessing function, not a pytest test


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    r, g, b = images.unbind(-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def _shift_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """
    Rotate the HSV hue of ``(B, T, 3, H, W)`` images in [0, 1] by ``shift`` (B,) turns.

    The same result as an RGB -> HSV -> RGB round trip (torchvision's ``adjust_hue``), with
    saturation and value never formed: with M = max, m = min and C = M - m of a pixel,
    6h = (g - b) / C, 2 + (b - r) / C or 4 + (r - g) / C (max channel r, g, b), and channel
    n in (5, 3, 1) for (r, g, b) is M - C * clamp(min(k, 4 - k), 0, 1),
    k = (n + 6h) mod 6. One division per pixel instead of five.
    """
    r, g, b = images.unbind(-3)
    maxc = images.amax(dim=-3)
    chroma = maxc - images.amin(dim=-3)
    inverse = 1.0 / torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    sixth = torch.where(maxc == r, (g - b) * inverse,
                        torch.where(maxc == g, 2.0 + (b - r) * inverse, 4.0 + (r - g) * inverse))
    sixth = sixth.add_(6.0 * shift.view(-1, 1, 1, 1)).unsqueeze(-3)
    n = torch.tensor((5.0, 3.0, 1.0), dtype=images.dtype, device=images.device).view(3, 1, 1)
    k = torch.remainder(sixth + n, 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return maxc.unsqueeze(-3) - chroma.unsqueeze(-3) * ramp


def _color_jitter(images: torch.Tensor, factors: torch.Tensor,
                  rotate_hue: bool = True) -> torch.Tensor:
    """
    Jitter ``(B, T, 3, H, W)`` in [0, 1] with per-clip ``factors`` ``(B, 4)``.

    ``rotate_hue=False`` (the config has no hue range, so every shift is 0) skips the
    hue step, which would be the identity.
    """
    def per_clip(column: int) -> torch.Tensor:
        return factors[:, column].view(-1, 1, 1, 1, 1)

    images = (images * per_clip(0)).clamp_(0.0, 1.0)
    mean = _grayscale(images).mean(dim=(-3, -2, -1), keepdim=True)
    images = (per_clip(1) * images + (1.0 - per_clip(1)) * mean).clamp_(0.0, 1.0)
    gray = _grayscale(images)
    images = (per_clip(2) * images + (1.0 - per_clip(2)) * gray).clamp_(0.0, 1.0)
    return _shift_hue(images, factors[:, 3]) if rotate_hue else images


def train_transform(clips: ArrayLike, cfg: PreprocessConfig,
                    generator: torch.Generator) -> torch.Tensor:
    """
    Augment a batch of clips as in the paper's training (Section IV-B).

    ``clips``: uint8 ``(B, T, S, S, 3)`` tensor (or numpy array), on any device.
    ``generator``: a CPU ``torch.Generator``; all random draws come from it, so a seeded
    generator gives the same output. Per clip (shared by its T frames): a random crop of
    ``round(S * train_crop_fraction)`` pixels, bilinear antialiased resize to
    ``output_size``, brightness/contrast/saturation factors uniform in ``[1 - j, 1 + j]``
    (clipped at 0) and a hue shift uniform in ``[-j_hue, j_hue]``, then normalisation.
    Returns float32 ``(B, T, 3, output_size, output_size)``.
    """
    tensor = _as_uint8_tensor(clips, 'train_transform', 5)
    if tensor.dim() != 5:
        raise PreprocessError(
            f'train_transform expects clips (B, T, S, S, 3), got {tuple(tensor.shape)}')
    batch, steps, size = tensor.shape[0], tensor.shape[1], tensor.shape[2]
    crop = max(1, min(size, int(round(size * cfg.train_crop_fraction))))
    offsets = torch.randint(0, size - crop + 1, (batch, 2), generator=generator).tolist()
    brightness, contrast, saturation, hue = cfg.jitter
    low = torch.tensor([max(0.0, 1.0 - brightness), max(0.0, 1.0 - contrast),
                        max(0.0, 1.0 - saturation), -hue])
    high = torch.tensor([1.0 + brightness, 1.0 + contrast, 1.0 + saturation, hue])
    factors = low + (high - low) * torch.rand((batch, 4), generator=generator)

    cropped = torch.stack([tensor[b, :, y:y + crop, x:x + crop]
                           for b, (y, x) in enumerate(offsets)])
    images = cropped.reshape(batch * steps, crop, crop, 3).permute(0, 3, 1, 2)
    images = _resize_square(images.float().div_(255.0), cfg.output_size)
    images = images.clamp_(0.0, 1.0).reshape(batch, steps, 3, cfg.output_size,
                                             cfg.output_size)
    # Decided from the config, not the drawn factors: no device sync on the GPU.
    images = _color_jitter(images, factors.to(images.device), rotate_hue=hue > 0)
    return _normalise(images, cfg).contiguous()

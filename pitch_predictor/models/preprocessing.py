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

Skeleton-guided crop (``crop_mode='skeleton'``, issue 13): instead of the fixed centre
square, one square per trial around the pitcher, decided from the rest pose before the
motion (:func:`skeleton_crop_box`: the joints projected into the colour image with the
camera's :class:`CameraIntrinsics`, the box sized from the person's projected height),
fixed over the trial, and the centre crop when there is no skeleton
(:func:`trial_crop_box`, used by the cache builder; the node does not compute it yet).
"""

from dataclasses import asdict, dataclass, fields
import math
from typing import Any, Mapping, Optional, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale.
_LUMA = (0.2989, 0.587, 0.114)
CROP_MODES = ('centre', 'skeleton')
# Kinect V2 colour camera, nominal: fx = fy = 1081.37 px at 1920x1080, principal point at
# the image centre (the simulator's camera, pitch_predictor.sim.render.KINECT_COLOR_FOCAL).
KINECT_V2_COLOR_HEIGHT = 1080
KINECT_V2_COLOR_FOCAL = 1081.37
# Frames of a trial's start taken as the rest pose by trial_crop_box (the pitcher stands
# still for at least the detector's first frames: the onset is never before frame 9).
REST_FRAMES = 5

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
    ``crop_mode``: 'centre' (the paper's fixed centre square) or 'skeleton' (one square
    per trial around the pitcher: :func:`skeleton_crop_box`; ``frame_height`` and
    ``crop_size`` then only give the fallback when there is no skeleton).
    ``skeleton_scale``: the skeleton box's side / the rest pose's projected height.
    ``skeleton_offset``: (right, down) shift of the box centre from the centre of the rest
    pose's projected joints, in units of that height (the throw steps forward and raises
    the arm: the default keeps every joint of every trial of the default synthetic set
    inside, with a margin of 0.06 heights for the body's outline).
    """

    frame_height: int = 360
    crop_size: int = 240
    stored_size: int = 240
    output_size: int = 224
    train_crop_fraction: float = 235.0 / 240.0
    jitter: Tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.1)
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    crop_mode: str = 'centre'
    skeleton_scale: float = 1.5
    skeleton_offset: Tuple[float, float] = (0.05, -0.05)

    def __post_init__(self) -> None:
        """Normalise sequences to tuples and check the values are usable."""
        self.jitter = tuple(float(v) for v in self.jitter)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.skeleton_offset = tuple(float(v) for v in self.skeleton_offset)
        self.skeleton_scale = float(self.skeleton_scale)
        if self.crop_mode not in CROP_MODES:
            raise PreprocessError(f'PreprocessConfig.crop_mode must be one of {CROP_MODES}, '
                                  f'got {self.crop_mode!r}')
        if self.skeleton_scale <= 0 or len(self.skeleton_offset) != 2:
            raise PreprocessError('PreprocessConfig: skeleton_scale must be > 0 and '
                                  'skeleton_offset hold 2 values')
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


@dataclass(frozen=True)
class CameraIntrinsics:
    """
    Pinhole intrinsics of the colour image (pixels), for Kinect camera-space points.

    Kinect camera space: metres, x to the sensor's left, y up, z away from the sensor, so
    ``u = cx - fx x / z`` and ``v = cy - fy y / z`` (pixel centres at integer coordinates).
    On a real Kinect the colour camera sits beside the depth camera; there the SDK's
    coordinate mapper (``MapCameraPointToColorSpace``) is the exact projection, and these
    intrinsics (or the calibrated ones) its pinhole approximation.
    """

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def kinect_v2_color(cls, width: int, height: int) -> 'CameraIntrinsics':
        """Return the Kinect V2 colour camera's nominal intrinsics scaled to ``height``."""
        focal = KINECT_V2_COLOR_FOCAL * height / KINECT_V2_COLOR_HEIGHT
        return cls(focal, focal, (width - 1) / 2.0, (height - 1) / 2.0)

    def project(self, points: np.ndarray) -> np.ndarray:
        """
        Project camera-space points ``(..., 3)`` to pixels ``(..., 2)``, float64.

        Points with a NaN coordinate or not in front of the camera (z <= 0) give NaN.
        """
        points = np.asarray(points, dtype=np.float64)
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        with np.errstate(invalid='ignore', divide='ignore'):
            z = np.where(np.isfinite(points).all(axis=-1) & (z > 0), z, np.nan)
            return np.stack([self.cx - self.fx * x / z, self.cy - self.fy * y / z], -1)


def _round(value: float) -> int:
    """Round half up (not to even): box corners and sides then have exact expectations."""
    return int(math.floor(value + 0.5))


def skeleton_crop_box(rest_joints: np.ndarray, width: int, height: int,
                      intrinsics: CameraIntrinsics, cfg: PreprocessConfig
                      ) -> Optional[Tuple[int, int, int]]:
    """
    Return ``(x0, y0, side)`` of the square around the pitcher, None without a skeleton.

    ``rest_joints``: ``(K, 25, 3)`` (or one ``(25, 3)``) camera-space joints of frames at
    rest, before the motion; NaN joints (not tracked) are ignored. Their projections
    (:meth:`CameraIntrinsics.project`) are reduced to one pose, the per-joint median over
    the K frames; the person's projected height ``h`` is its vertical extent. The side is
    ``round(skeleton_scale * h)`` (at most the frame's shorter side), the centre is the
    centre of the pose's bounding box shifted by ``skeleton_offset * h``, and the box is
    moved inside the ``width`` x ``height`` frame where it would stick out. None when
    fewer than two joints project, or they span no height.
    """
    joints = np.asarray(rest_joints, dtype=np.float64)
    if joints.ndim == 2:
        joints = joints[None]
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise PreprocessError(f'skeleton_crop_box expects joints (K, J, 3), got {joints.shape}')
    uv = intrinsics.project(joints)
    valid = np.isfinite(uv).all(axis=-1)  # (K, J)
    seen = valid.any(axis=0)
    if seen.sum() < 2:
        return None
    pose = np.stack([np.median(uv[valid[:, j], j], axis=0) for j in np.flatnonzero(seen)])
    u, v = pose[:, 0], pose[:, 1]
    tall = float(v.max() - v.min())
    if tall <= 0:
        return None
    side = max(1, min(_round(cfg.skeleton_scale * tall), width, height))
    centre_u = (u.min() + u.max()) / 2.0 + cfg.skeleton_offset[0] * tall
    centre_v = (v.min() + v.max()) / 2.0 + cfg.skeleton_offset[1] * tall
    # Pixel i covers [i - 1/2, i + 1/2): the box x0 .. x0 + side - 1 is centred on
    # x0 + (side - 1) / 2.
    x0 = min(max(_round(centre_u - (side - 1) / 2.0), 0), width - side)
    y0 = min(max(_round(centre_v - (side - 1) / 2.0), 0), height - side)
    return x0, y0, side


def trial_crop_box(joints: np.ndarray, width: int, height: int, cfg: PreprocessConfig,
                   intrinsics: Optional[CameraIntrinsics] = None,
                   rest_frames: int = REST_FRAMES) -> Tuple[Tuple[int, int, int], bool]:
    """
    Return (the crop box of a trial, whether it came from the skeleton).

    ``crop_mode='centre'``: :func:`crop_box`. ``'skeleton'``: :func:`skeleton_crop_box` of
    the trial's first ``rest_frames`` frames of ``joints`` ``(T, 25, 3)`` (the rest pose),
    with ``intrinsics`` (default: the Kinect V2 colour camera's at this frame size), and
    the centre crop when those frames hold no skeleton.
    """
    if cfg.crop_mode == 'skeleton':
        intrinsics = intrinsics or CameraIntrinsics.kinect_v2_color(width, height)
        box = skeleton_crop_box(np.asarray(joints)[:rest_frames], width, height, intrinsics,
                                cfg)
        if box is not None:
            return box, True
    return crop_box(width, height, cfg), False


def joints_inside(joints: np.ndarray, box: Tuple[int, int, int],
                  intrinsics: CameraIntrinsics) -> Tuple[int, int]:
    """Return (joints projecting inside ``box``, joints that project) of ``(..., 3)``."""
    uv = intrinsics.project(joints)
    valid = np.isfinite(uv).all(axis=-1)
    x0, y0, side = box
    u, v = uv[..., 0], uv[..., 1]
    with np.errstate(invalid='ignore'):
        inside = valid & (u >= x0 - 0.5) & (u < x0 + side - 0.5) & (v >= y0 - 0.5) \
            & (v < y0 + side - 0.5)
    return int(inside.sum()), int(valid.sum())


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    # INTER_AREA averages source pixels when shrinking (no aliasing); it is blocky when
    # enlarging, where INTER_LINEAR is the better choice.
    shrinking = width <= image.shape[1] and height <= image.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def crop_frames(frames: np.ndarray, cfg: PreprocessConfig,
                box: Optional[Tuple[int, int, int]] = None) -> np.ndarray:
    """
    Crop camera frames to the stored square crops.

    ``frames``: RGB uint8 ``(N, H, W, 3)`` or a single ``(H, W, 3)`` frame, any size.
    Returns uint8 ``(N, stored_size, stored_size, 3)`` (N = 1 for a single frame): the
    square ``box`` ``(x0, y0, side)`` (default: the centre square of :func:`crop_box`),
    resized to ``stored_size`` with ``cv2.INTER_AREA`` (one resize of the crop only: the
    rest of the frame is never touched). ``crop_mode='skeleton'`` needs the trial's
    ``box`` (:func:`trial_crop_box`): without it this raises :class:`PreprocessError`.
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
    if box is None:
        if cfg.crop_mode == 'skeleton':
            raise PreprocessError(
                "crop_mode 'skeleton' crops each trial around its pitcher: pass the trial's "
                'box (preprocessing.trial_crop_box); a centre crop would not be what the '
                'model was trained on')
        box = crop_box(width, height, cfg)
    x0, y0, side = (int(v) for v in box)
    if side <= 0 or x0 < 0 or y0 < 0 or x0 + side > width or y0 + side > height:
        raise PreprocessError(f'crop box {tuple(box)} (x0, y0, side) is not inside the '
                              f'{width}x{height} frame')
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

"""Preprocessing: crop geometry, the test path, the training augmentation."""

import cv2
import numpy as np
from pitch_predictor.models.preprocessing import (
    crop_frames, fast_preprocess, paper_preprocess, PreprocessConfig, PreprocessError,
    test_transform, train_transform)
import pytest
import torch

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def marked_frame(width: int, height: int, side: int) -> np.ndarray:
    """Black frame with a white square of ``side`` px centred on the image centre."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    y0, x0 = (height - side) // 2, (width - side) // 2
    frame[y0:y0 + side, x0:x0 + side] = 255
    # A red bar at the far left: outside any centre crop of a 16:9 frame.
    frame[:, :width // 20, 0] = 255
    return frame


def white_centroid(crop: np.ndarray) -> tuple:
    mask = crop[..., 1] > 127
    ys, xs = np.nonzero(mask)
    return ys.mean(), xs.mean(), mask.sum()


def test_paper_and_fast_configs():
    assert (paper_preprocess().stored_size, paper_preprocess().output_size) == (240, 224)
    assert (fast_preprocess().stored_size, fast_preprocess().output_size) == (120, 112)
    for cfg in (paper_preprocess(), fast_preprocess()):
        # [13]'s recorder stores 640x360; the paper crops 240 x 240 of that.
        assert (cfg.frame_height, cfg.crop_size) == (360, 240)
        assert cfg.train_crop_fraction == pytest.approx(235 / 240)


def test_config_round_trip_and_unknown_field():
    cfg = fast_preprocess()
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(PreprocessError, match='unknown'):
        PreprocessConfig.from_dict({**cfg.to_dict(), 'colour': 1})


def test_crop_at_stored_height_is_an_exact_centre_slice():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 360, 640, 3), dtype=np.uint8)
    out = crop_frames(frames, paper_preprocess())
    # The paper's crop of [13]'s 640x360 frames: rows 60..299, columns 200..439.
    np.testing.assert_array_equal(out, frames[:, 60:300, 200:440])


@pytest.mark.parametrize('size', [(640, 360), (960, 540), (1920, 1080)])
def test_every_camera_size_gives_the_same_field_of_view(size):
    # A scene drawn in relative coordinates: the crop must show the same part of it.
    width, height = size
    base = np.random.default_rng(1).integers(0, 256, (36, 64, 3), dtype=np.uint8)
    frame = cv2.resize(base, (width, height), interpolation=cv2.INTER_NEAREST)
    full = cv2.resize(base, (1920, 1080), interpolation=cv2.INTER_NEAREST)
    reference = full[180:900, 600:1320]  # the central 720x720 of the 1080p image
    expected = cv2.resize(reference, (120, 120), interpolation=cv2.INTER_AREA)
    crop = crop_frames(frame, fast_preprocess())[0]
    # Exactly equal: the scene's cells are 10, 15 and 30 px wide at these sizes, and
    # every resize on the way (to the crop, to 120 px) averages pixels of one cell only.
    np.testing.assert_array_equal(crop, expected)


@pytest.mark.parametrize('size', [(960, 540), (1920, 1080)])
def test_crop_geometry_keeps_the_centre(size):
    width, height = size
    frame = marked_frame(width, height, side=height // 10)
    for cfg in (paper_preprocess(), fast_preprocess()):
        crop = crop_frames(frame, cfg)
        assert crop.shape == (1, cfg.stored_size, cfg.stored_size, 3)
        assert crop.dtype == np.uint8
        cy, cx, area = white_centroid(crop[0])
        # Centred exactly: the square (even side, on the frame's centre) and the crop
        # share their centre.
        centre = (cfg.stored_size - 1) / 2
        assert (cy, cx) == (centre, centre)
        # The square spans 1/10 of the frame height, the crop 2/3 of it: a side of
        # 3/20 of the crop (36 px of 240, 18 of 120), exactly (whole pixels).
        assert area == (cfg.stored_size * 3 // 20) ** 2
        # The bar at the far left of the camera frame lies outside the crop.
        assert crop[0, :, :, 0].max() == crop[0, :, :, 1].max()


def test_crop_rejects_bad_frames():
    cfg = paper_preprocess()
    with pytest.raises(PreprocessError, match='narrow'):
        crop_frames(np.zeros((480, 300, 3), np.uint8), cfg)  # needs a 320 px square
    with pytest.raises(PreprocessError, match='uint8'):
        crop_frames(np.zeros((240, 426, 3), np.float32), cfg)
    with pytest.raises(PreprocessError, match='RGB'):
        crop_frames(np.zeros((240, 426), np.uint8), cfg)


def test_test_transform_matches_plain_normalisation():
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (2, 5, 112, 112, 3), dtype=np.uint8)
    cfg = fast_preprocess()  # output 112 == input 112: no resize, plain arithmetic
    out = test_transform(crops, cfg)
    expected = (crops.astype(np.float32) / 255.0 - MEAN) / STD
    expected = np.moveaxis(expected, -1, -3)
    assert out.shape == (2, 5, 3, 112, 112) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_test_transform_numpy_equals_torch_and_resizes():
    rng = np.random.default_rng(2)
    crops = rng.integers(0, 256, (4, 120, 120, 3), dtype=np.uint8)
    cfg = fast_preprocess()
    from_numpy = test_transform(crops, cfg)
    from_torch = test_transform(torch.from_numpy(crops), cfg, device='cpu')
    assert from_numpy.shape == (4, 3, 112, 112)
    assert torch.equal(from_numpy, from_torch)
    # A constant colour stays that colour through the resize.
    flat = np.full((120, 120, 3), (10, 128, 250), dtype=np.uint8)
    out = test_transform(flat, cfg)
    expected = (np.array([10, 128, 250], np.float32) / 255.0 - MEAN) / STD
    np.testing.assert_allclose(out.mean(dim=(-2, -1)).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(out.std(dim=(-2, -1)).numpy(), 0.0, atol=1e-5)


def test_train_transform_shapes_ranges_and_same_crop_per_clip():
    cfg = fast_preprocess()
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)
    clips = torch.from_numpy(np.stack([np.stack([frame] * 6), np.stack([frame[::-1]] * 6)]))
    out = train_transform(clips, cfg, torch.Generator().manual_seed(0))
    assert out.shape == (2, 6, 3, 112, 112) and out.dtype == torch.float32
    low = torch.from_numpy(-MEAN / STD).view(3, 1, 1)
    high = torch.from_numpy((1 - MEAN) / STD).view(3, 1, 1)
    assert bool((out >= low - 1e-5).all()) and bool((out <= high + 1e-5).all())
    # Identical frames in a clip stay identical: one crop and one jitter per clip.
    for clip in out:
        assert torch.equal(clip, clip[:1].expand_as(clip))


def test_train_transform_is_deterministic_per_seed():
    cfg = fast_preprocess()
    clips = torch.randint(0, 256, (3, 4, 120, 120, 3), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(5))
    first = train_transform(clips, cfg, torch.Generator().manual_seed(11))
    again = train_transform(clips, cfg, torch.Generator().manual_seed(11))
    other = train_transform(clips, cfg, torch.Generator().manual_seed(12))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_train_transform_without_augmentation_is_the_test_transform():
    cfg = PreprocessConfig(stored_size=120, output_size=112, train_crop_fraction=1.0,
                           jitter=(0.0, 0.0, 0.0, 0.0))
    clips = torch.randint(0, 256, (2, 3, 120, 120, 3), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(6))
    out = train_transform(clips, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, test_transform(clips, cfg), atol=2e-5, rtol=0)


def test_train_transform_crop_is_a_shifted_window():
    # A horizontal ramp: after a random crop + resize, values of column j come from
    # columns in [x0, x0 + crop) of the stored image, i.e. the crop never leaves it.
    cfg = PreprocessConfig(stored_size=120, output_size=118, jitter=(0.0, 0.0, 0.0, 0.0))
    ramp = np.tile(np.arange(120, dtype=np.uint8)[None, :, None], (120, 1, 3)) * 2
    clips = torch.from_numpy(np.stack([np.stack([ramp] * 2)] * 8))
    out = train_transform(clips, cfg, torch.Generator().manual_seed(0))
    values = (out[:, 0, 0] * STD[0] + MEAN[0]) * 255.0 / 2.0  # back to column numbers
    left = values[:, 60, 0]
    right = values[:, 60, -1]
    assert torch.allclose(right - left, torch.full_like(left, 117.0), atol=0.6)
    assert left.min() >= -0.1 and right.max() <= 119.1
    assert len(set(left.round().tolist())) > 1  # the offset varies between clips


def test_colour_jitter_equals_torchvisions_adjust_functions():
    # Brightness, contrast, saturation, hue in that order, per clip: the same numbers as
    # torchvision's functional ops (the hue rotation skips HSV's S and V, see _shift_hue).
    import torchvision.transforms.functional as TF

    from pitch_predictor.models.preprocessing import _color_jitter
    images = torch.rand(4, 3, 3, 24, 24, generator=torch.Generator().manual_seed(2))
    images[0, 0, :, :4, :4] = 0.5  # grey pixels: no hue to rotate
    images[1, 0, :, :4, :4] = torch.tensor([0.9, 0.9, 0.1]).view(3, 1, 1)  # ties for max
    factors = torch.tensor([[1.2, 0.8, 1.1, 0.05], [0.9, 1.1, 0.7, -0.08],
                            [1.0, 1.0, 1.0, 0.0], [1.3, 1.2, 0.9, 0.5]])
    expected = []
    for clip, (b, c, s, h) in zip(images, factors.tolist()):
        clip = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(clip, b), c), s)
        expected.append(TF.adjust_hue(clip, h))
    torch.testing.assert_close(_color_jitter(images, factors), torch.stack(expected),
                               atol=1e-5, rtol=0)
    # No hue range configured: skipping the hue step gives what rotating by 0 gives.
    no_hue = factors.clone()
    no_hue[:, 3] = 0.0
    without_hue = torch.stack([
        TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(clip, b), c), s)
        for clip, (b, c, s, _) in zip(images, no_hue.tolist())])
    torch.testing.assert_close(_color_jitter(images, no_hue, rotate_hue=False), without_hue,
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(_color_jitter(images, no_hue), without_hue, atol=1e-5, rtol=0)

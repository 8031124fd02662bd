"""Preprocessing: crop geometry, the test path, the training augmentation."""

from dataclasses import replace

import cv2
import numpy as np
from pitch_predictor.models.preprocessing import (
    CameraIntrinsics, crop_frames, fast_preprocess, joints_inside, paper_preprocess,
    PreprocessConfig, PreprocessError, skeleton_crop_box, test_transform, train_transform,
    trial_crop_box)
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


# ------------------------------------------ the skeleton-guided crop (issue 13, item 3a)

KINECT_360 = CameraIntrinsics.kinect_v2_color(640, 360)
SKELETON = replace(fast_preprocess(), crop_mode='skeleton')


def joints_at(pixels, z=3.0, intrinsics=KINECT_360):
    """Camera-space points (metres, depth ``z``) that project to ``pixels`` (..., 2)."""
    pixels = np.asarray(pixels, dtype=np.float64)
    x = (intrinsics.cx - pixels[..., 0]) * z / intrinsics.fx
    y = (intrinsics.cy - pixels[..., 1]) * z / intrinsics.fy
    return np.stack([x, y, np.full_like(x, z)], -1)


def pose(u_range=(300.0, 340.0), v_range=(120.0, 220.0)):
    """25 joints projecting into the given pixel ranges (corners reached exactly)."""
    u = np.linspace(*u_range, 25)
    v = np.linspace(*v_range, 25)[::-1]
    return joints_at(np.stack([u, v], -1))


def test_kinect_intrinsics_match_the_simulators_camera():
    from pitch_predictor.models.preprocessing import KINECT_V2_COLOR_FOCAL
    from pitch_predictor.sim.render import Camera, KINECT_COLOR_FOCAL
    assert KINECT_V2_COLOR_FOCAL == KINECT_COLOR_FOCAL
    assert CameraIntrinsics(1081.37 / 3, 1081.37 / 3, 319.5, 179.5) == KINECT_360
    points = np.array([[0.0, 0.0, 2.0], [0.5, 0.2, 2.0], [-0.3, -0.9, 4.0]])
    camera = Camera(640, 360, (0.0, 1.0, -4.0), (0.0, 1.0, 0.0))
    assert np.allclose(KINECT_360.project(points), camera.project(points), atol=1e-9)
    fx = 1081.37 / 3
    assert np.allclose(KINECT_360.project(points[1]), [319.5 - fx * 0.25, 179.5 - fx * 0.1])
    # Not tracked (NaN) or behind the camera: no pixel.
    assert np.isnan(KINECT_360.project([[np.nan, 0, 2], [0, 0, -1], [0, 0, 0]])).all()


def test_skeleton_box_exact():
    # Height 100 px: side 1.5 x 100 = 150; centre (320 + 0.05 x 100, 170 - 0.05 x 100) =
    # (325, 165); x0 = 325 - 149 / 2 = 250.5 -> 251, y0 = 165 - 74.5 = 90.5 -> 91.
    assert skeleton_crop_box(pose(), 640, 360, KINECT_360, SKELETON) == (251, 91, 150)
    # Scale and offset are the config's: side 200 centred on (320, 170), x0 = 320 - 99.5
    # = 220.5 -> 221, y0 = 170 - 99.5 -> 71 (halves round up).
    plain = replace(SKELETON, skeleton_scale=2.0, skeleton_offset=(0.0, 0.0))
    assert skeleton_crop_box(pose(), 640, 360, KINECT_360, plain) == (221, 71, 200)
    # Another camera: the intrinsics are a parameter (here twice the focal length, the
    # same pixel positions of points twice as far).
    other = CameraIntrinsics(2 * KINECT_360.fx, 2 * KINECT_360.fy, 319.5, 179.5)
    far = joints_at(np.stack([np.linspace(300, 340, 25), np.linspace(220, 120, 25)], -1),
                    z=6.0, intrinsics=other)
    assert skeleton_crop_box(far, 640, 360, other, SKELETON) == (251, 91, 150)


def test_skeleton_box_from_the_rest_frames_median_and_missing_joints():
    frames = np.stack([pose()] * 5)
    frames[2] += [0.5, 0.0, 0.0]  # one frame far off: the per-joint median ignores it
    frames[0, 3:10] = np.nan  # untracked joints in some frames
    assert skeleton_crop_box(frames, 640, 360, KINECT_360, SKELETON) == (251, 91, 150)
    # Only two joints left, the top and bottom ones: the same height and centre line.
    two = np.full((25, 3), np.nan)
    two[[0, 24]] = pose()[[0, 24]]
    assert skeleton_crop_box(two, 640, 360, KINECT_360, SKELETON) == (251, 91, 150)
    one = np.full((25, 3), np.nan)
    one[0] = pose()[0]
    assert skeleton_crop_box(one, 640, 360, KINECT_360, SKELETON) is None
    assert skeleton_crop_box(np.full((5, 25, 3), np.nan), 640, 360, KINECT_360,
                             SKELETON) is None


def test_skeleton_box_stays_inside_the_frame():
    # A pitcher at the left edge: the box is moved right to x0 = 0.
    assert skeleton_crop_box(pose((5.0, 45.0)), 640, 360, KINECT_360, SKELETON) == (0, 91, 150)
    # Near the bottom: moved up to y0 = 360 - 150.
    assert skeleton_crop_box(pose(v_range=(250.0, 350.0)), 640, 360, KINECT_360,
                             SKELETON) == (251, 210, 150)
    # Taller than the frame allows: side capped at the frame height 360; centre u = 320 +
    # 0.05 x 300 = 335, x0 = 335 - 179.5 = 155.5 -> 156; y0 clamped to 0.
    assert skeleton_crop_box(pose(v_range=(0.0, 300.0)), 640, 360, KINECT_360,
                             SKELETON) == (156, 0, 360)


def test_trial_box_falls_back_to_the_centre_crop():
    trial = np.stack([pose()] * 90)
    assert trial_crop_box(trial, 640, 360, SKELETON) == ((251, 91, 150), True)
    # The rest pose is the first 5 frames: a missing skeleton there means the centre crop.
    trial[:5] = np.nan
    assert trial_crop_box(trial, 640, 360, SKELETON) == ((200, 60, 240), False)
    # The centre mode never looks at the joints.
    assert trial_crop_box(np.stack([pose()] * 90), 640, 360, fast_preprocess()) == (
        (200, 60, 240), False)


def test_joints_inside_counts_the_box_exactly():
    box = (251, 91, 150)  # covers pixel centres 251..400 and 91..240
    points = joints_at([[250.5, 100.0], [400.49, 100.0], [400.5, 100.0], [300.0, 90.4]])
    points = np.concatenate([points, [[np.nan, 0.0, 1.0]]])
    assert joints_inside(points, box, KINECT_360) == (2, 4)


def test_crop_frames_with_a_box_and_the_skeleton_mode_needs_one():
    frames = np.random.default_rng(0).integers(0, 256, (2, 360, 640, 3), dtype=np.uint8)
    crops = crop_frames(frames, SKELETON, (251, 91, 150))
    assert crops.shape == (2, 120, 120, 3)
    expected = cv2.resize(frames[1, 91:241, 251:401], (120, 120), interpolation=cv2.INTER_AREA)
    assert np.array_equal(crops[1], expected)
    at_stored = replace(SKELETON, stored_size=150)
    assert np.array_equal(crop_frames(frames, at_stored, (251, 91, 150)),
                          frames[:, 91:241, 251:401])
    with pytest.raises(PreprocessError, match="crop_mode 'skeleton'"):
        crop_frames(frames, SKELETON)
    with pytest.raises(PreprocessError, match='not inside'):
        crop_frames(frames, SKELETON, (600, 0, 150))
    with pytest.raises(PreprocessError, match='crop_mode'):
        replace(SKELETON, crop_mode='person')
    # The centre crop is unchanged, and old configs (no crop fields) still load.
    assert np.array_equal(crop_frames(frames, fast_preprocess()),
                          crop_frames(frames, fast_preprocess(), (200, 60, 240)))
    old = {k: v for k, v in fast_preprocess().to_dict().items()
           if not k.startswith(('crop_mode', 'skeleton_'))}
    assert PreprocessConfig.from_dict(old) == fast_preprocess()
    assert PreprocessConfig.from_dict(SKELETON.to_dict()) == SKELETON


def test_a_cache_stored_larger_records_the_input_size_of_its_models():
    from pitch_predictor.sim.cli import resized_preprocess
    resized = resized_preprocess(fast_preprocess(), 170)
    assert (resized.stored_size, resized.output_size) == (170, 160)
    assert resized.crop_size == fast_preprocess().crop_size  # same field of view
    for preset in (fast_preprocess(), paper_preprocess()):
        same = resized_preprocess(preset, preset.stored_size)
        assert (same.stored_size, same.output_size) == (preset.stored_size, preset.output_size)
    assert resized_preprocess(fast_preprocess(), 24).output_size == 16
    assert resized_preprocess(fast_preprocess(), 12).output_size == 12  # never above stored

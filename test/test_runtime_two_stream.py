"""
PredictorCore with models that take joints, calibration temperature and skeleton gaps.

Two-stream (RGB + joints) and joints-only (``skeleton_gru``) models, the checkpoint's
calibration temperature, and the skeleton-gap policy (docs/node.md, "Skeleton gaps") on
hand-built streams.

Expected values come from the model library's pipeline written out here (crop, test
transform, ``model(clip, joints)`` per Table II clip, softmax of logits / temperature,
mean) and from the window's joints built by hand (held rows, NaN rows); for the
joints-only model, from training's own decision (``training.evaluate.predict_windows``).
"""

import numpy as np
from pitch_predictor.kinect import WINDOW
from pitch_predictor.models.preprocessing import crop_frames, test_transform
from pitch_predictor.runtime.core import CoreConfig, CoreConfigError, PredictorCore
from pitch_predictor.start_detector import detect_start
import pytest
from runtime_fixtures import make_checkpoint, SKELETON_RECIPE, synthetic_trial
import torch

FRAME_NS = 33_333_333
T0 = 7_000_000_000
HOLD = 3  # skeleton_hold_frames default
# Table II, method 2 (the test checkpoints' method): first frames 0..3, step 4, 10 frames.
METHOD_2_CLIPS = [np.arange(first, first + 40, 4) for first in range(4)]


@pytest.fixture(scope='module')
def trial():
    """Render a 480x270 pitch (smaller than qHD, same geometry)."""
    return synthetic_trial(width=480, height=270)


@pytest.fixture(scope='module')
def start(trial):
    """Start frame of the pitch by the whole-trial detector (independent of the core)."""
    frames, joints = trial
    from pitch_predictor.models.preprocessing import fast_preprocess

    return detect_start(crop_frames(frames, fast_preprocess()), joints)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """Save random fast two-stream and RGB-only models as checkpoints, fixed seeds."""
    folder = tmp_path_factory.mktemp('two_stream')
    return {
        'two_stream_2d': make_checkpoint(folder / 'ts2d.pt', 'two_stream_2d', seed=1),
        'two_stream_1d': make_checkpoint(folder / 'ts1d.pt', 'two_stream_1d', seed=2),
        'calibrated': make_checkpoint(folder / 'ts2d_t.pt', 'two_stream_2d', seed=1,
                                      meta={'temperature': 2.5}),
        'rgb_calibrated': make_checkpoint(folder / 'rgb_t.pt', 'convgru2d_alexnet', seed=3,
                                          meta={'temperature': 0.5}),
        'rgb': make_checkpoint(folder / 'rgb.pt', 'convgru2d_alexnet', seed=3),
        'joints': make_checkpoint(folder / 'skel.pt', 'skeleton_gru', seed=4,
                                  meta={'temperature': 1.7}, config=SKELETON_RECIPE),
    }


def _core(path, jobs=None, notes=None, **settings):
    return PredictorCore(path, CoreConfig(**settings), device='cpu',
                         submit=None if jobs is None else jobs.append,
                         notify=None if notes is None else
                         (lambda key, message: notes.append((key, message))))


def _feed(core, frames, joints, no_skeleton=()):
    """Ingest the trial; frames whose index is in ``no_skeleton`` get no skeleton."""
    out = []
    for k in range(len(frames)):
        out += core.ingest(T0 + k * FRAME_NS, frames[k],
                           None if k in no_skeleton else joints[k])
    return out


def _plain(model, preprocess, window_frames, window_joints, clips=METHOD_2_CLIPS,
           temperature=1.0):
    """Apply the paper's test rule with the model library: each clip, the whole model."""
    x = test_transform(crop_frames(window_frames, preprocess), preprocess)
    j = torch.as_tensor(np.asarray(window_joints, np.float32))
    with torch.no_grad():
        probs = [torch.softmax(model(x[clip][None], j[clip][None])[0] / temperature, dim=0)
                 for clip in clips]
    return torch.stack(probs).mean(0).double().numpy()


def _gap(start, first, last):
    """Stream frame indices of window offsets ``first .. last`` (inclusive)."""
    return set(range(start + first, start + last + 1))


def _window_joints(joints, start, missing_offsets):
    """Build the joints a window should carry: own, held (last own) for HOLD, then NaN."""
    out = joints[start:start + WINDOW].copy()
    held, last = 0, None
    for offset in range(WINDOW):
        if offset in missing_offsets:
            held += 1
            out[offset] = last if held <= HOLD else np.nan
        else:
            held, last = 0, out[offset].copy()
    return out


def assert_short_gap_counted(counters) -> None:
    """Check the counters of a window with skeletons lost for 10 frames (decided)."""
    assert counters['frames_without_skeleton'] == 10
    assert counters['frames_skeleton_held'] == HOLD
    assert counters['frames_skeleton_missing'] == 10 - HOLD
    assert counters['decisions_with_filled_skeleton'] == 1
    assert counters['windows_skipped_no_skeleton'] == 0


def test_two_stream_final_equals_the_plain_pipeline(checkpoints, trial, start):
    frames, joints = trial
    core = _core(checkpoints['two_stream_2d'])
    assert core.input_kind == 'rgb+joints' and core.two_stream and not core.streamable
    predictions = _feed(core, frames, joints)
    assert [p.early for p in predictions] == [False]
    final = predictions[0]
    assert final.start_stamp_ns == T0 + start * FRAME_NS
    expected = _plain(core.model, core.preprocess, frames[start:start + WINDOW],
                      joints[start:start + WINDOW])
    np.testing.assert_allclose(final.probabilities, expected, atol=1e-5)
    assert final.block == int(np.argmax(expected)) + 1
    assert final.skeleton_filled_frames == 0
    assert core.counters['decisions_with_filled_skeleton'] == 0
    # predict_crops (offline use) takes the same joints.
    crops = crop_frames(frames[start:start + WINDOW], core.preprocess)
    np.testing.assert_allclose(core.predict_crops(crops, joints[start:start + WINDOW]),
                               expected, atol=1e-5)


def test_two_stream_early_estimates_are_the_clip_prefixes(checkpoints, trial, start):
    frames, joints = trial
    core = _core(checkpoints['two_stream_1d'])
    assert core.streamable
    predictions = _feed(core, frames, joints)
    early = [p for p in predictions if p.early]
    finals = [p for p in predictions if not p.early]
    assert len(finals) == 1
    # The start is confirmed 8 frames into the window (run_length), then every 5 frames.
    assert [round(p.fraction_seen * WINDOW) for p in early] == [8, 10, 15, 20, 25, 30, 35]
    window = frames[start:start + WINDOW]
    window_joints = joints[start:start + WINDOW]
    np.testing.assert_allclose(finals[0].probabilities,
                               _plain(core.model, core.preprocess, window, window_joints),
                               atol=1e-5)
    # Each early estimate = every clip's frames seen so far through the whole model.
    for probe in early:
        seen = round(probe.fraction_seen * WINDOW)
        prefixes = [clip[clip < seen] for clip in METHOD_2_CLIPS]
        expected = _plain(core.model, core.preprocess, window, window_joints,
                          [p for p in prefixes if len(p)])
        np.testing.assert_allclose(probe.probabilities, expected, atol=1e-5)


@pytest.mark.parametrize('name,temperature', [('calibrated', 2.5), ('rgb_calibrated', 0.5)])
def test_the_checkpoint_temperature_divides_the_logits(checkpoints, trial, start, name,
                                                       temperature):
    frames, joints = trial
    core = _core(checkpoints[name])
    assert core.temperature == temperature
    final = _feed(core, frames, joints)[0]
    window = frames[start:start + WINDOW]
    if core.two_stream:
        expected = _plain(core.model, core.preprocess, window, joints[start:start + WINDOW],
                          temperature=temperature)
    else:
        x = test_transform(crop_frames(window, core.preprocess), core.preprocess)
        with torch.no_grad():
            expected = torch.stack([torch.softmax(core.model(x[c][None])[0] / temperature, 0)
                                    for c in METHOD_2_CLIPS]).mean(0).double().numpy()
    np.testing.assert_allclose(final.probabilities, expected, atol=1e-5)


def test_bad_temperature_is_refused(tmp_path):
    path = make_checkpoint(tmp_path / 'bad.pt', 'two_stream_2d', meta={'temperature': -1.0})
    with pytest.raises(CoreConfigError, match='temperature'):
        PredictorCore(path, device='cpu')


def test_short_gap_holds_then_nan_and_is_decided(checkpoints, trial, start):
    frames, joints = trial
    jobs, notes = [], []
    core = _core(checkpoints['two_stream_2d'], jobs, notes)
    missing = set(range(10, 20))  # window offsets 10..19: 3 held, 7 without joints
    assert _feed(core, frames, joints, _gap(start, 10, 19)) == []  # decisions submitted
    assert len(jobs) == 1
    job = jobs[0]
    expected_joints = _window_joints(joints, start, missing)
    assert np.isnan(expected_joints[13:20]).all() and not np.isnan(expected_joints[:13]).any()
    np.testing.assert_array_equal(job.joints.numpy(), expected_joints)
    assert job.skeleton_filled_frames == 10
    prediction = core.decide(job)
    np.testing.assert_allclose(
        prediction.probabilities,
        _plain(core.model, core.preprocess, frames[start:start + WINDOW], expected_joints),
        atol=1e-5)
    assert np.isfinite(prediction.probabilities).all()
    assert prediction.skeleton_filled_frames == 10
    assert_short_gap_counted(core.counters)
    assert [key for key, _ in notes] == ['missing_skeleton']  # detection paused, once


def test_long_gap_skips_the_window_counted_and_notified(checkpoints, trial, start):
    frames, joints = trial
    notes = []
    core = _core(checkpoints['two_stream_2d'], notes=notes)
    # Offsets 8..39 (after the start is confirmed): 32 of 40 frames without a skeleton.
    assert _feed(core, frames, joints, _gap(start, 8, 39)) == []
    assert core.counters['windows_started'] == 1
    assert core.counters['windows_skipped_no_skeleton'] == 1
    assert core.counters['predictions'] == 0
    assert core.counters['frames_skeleton_held'] == HOLD
    assert core.counters['frames_skeleton_missing'] == 32 - HOLD
    gap_notes = [message for key, message in notes if key == 'skeleton_gap']
    assert len(gap_notes) == 1 and '32 of 40 frames' in gap_notes[0]
    assert core.phase != 'predicted'


@pytest.mark.parametrize('gap,fraction,decided', [
    (20, 0.5, True),     # exactly half: not more than the limit, decided
    (21, 0.5, False),    # one frame more: skipped
    (20, 0.45, False),
    (40 - 8, 1.0, True),  # the limit off: even 32 frames without a skeleton are decided
    (1, 0.0, False),     # no gap allowed: one held frame is enough to skip
])
def test_the_limit_is_a_share_of_the_window(checkpoints, trial, start, gap, fraction,
                                            decided):
    frames, joints = trial
    core = _core(checkpoints['two_stream_2d'], max_missing_skeleton_fraction=fraction)
    out = _feed(core, frames, joints, _gap(start, 8, 8 + gap - 1))
    assert len(out) == int(decided)
    assert core.counters['windows_skipped_no_skeleton'] == int(not decided)
    assert core.counters['decisions_with_filled_skeleton'] == int(decided)
    if decided:
        assert out[0].skeleton_filled_frames == gap
        assert np.isfinite(out[0].probabilities).all()


def test_early_estimates_follow_the_same_limit(checkpoints, trial, start):
    frames, joints = trial
    core = _core(checkpoints['two_stream_1d'])
    out = _feed(core, frames, joints, _gap(start, 8, 39))
    # Seen 8, 10, 15: 0, 2, 7 frames without a skeleton (<= half): estimated; seen 20..35:
    # 12/20, 17/25, 22/30, 27/35: skipped; the final (32/40) too.
    assert [round(p.fraction_seen * WINDOW) for p in out] == [8, 10, 15]
    assert [p.skeleton_filled_frames for p in out] == [0, 2, 7]
    assert core.counters['early_skipped_no_skeleton'] == 4
    assert core.counters['early_estimates_with_filled_skeleton'] == 2
    assert core.counters['windows_skipped_no_skeleton'] == 1


def test_rgb_only_models_ignore_the_skeleton_limit(checkpoints, trial, start):
    frames, joints = trial
    core = _core(checkpoints['rgb'])
    out = _feed(core, frames, joints, _gap(start, 8, 39))
    assert len(out) == 1 and out[0].skeleton_filled_frames == 0
    assert core.counters['windows_skipped_no_skeleton'] == 0
    assert core.counters['decisions_with_filled_skeleton'] == 0
    # The skeleton counts are kept all the same.
    assert core.counters['frames_skeleton_held'] == HOLD


def test_a_skeleton_with_nan_joints_is_a_frame_without_skeleton(checkpoints, trial, start):
    frames, joints = trial
    core = _core(checkpoints['two_stream_2d'])
    broken = joints.copy()
    broken[start + 12, 4] = np.nan  # one joint of one frame untracked
    out = _feed(core, frames, broken)
    assert len(out) == 1
    assert core.counters['skeletons_rejected.non_finite_joints'] == 1
    assert out[0].skeleton_filled_frames == 1  # held over from the frame before
    expected_joints = _window_joints(joints, start, {12})
    np.testing.assert_allclose(
        out[0].probabilities,
        _plain(core.model, core.preprocess, frames[start:start + WINDOW], expected_joints),
        atol=1e-5)


def test_the_limit_is_validated_and_changes_at_run_time(checkpoints):
    with pytest.raises(CoreConfigError, match='max_missing_skeleton_fraction'):
        CoreConfig(max_missing_skeleton_fraction=1.5).validate()
    core = _core(checkpoints['two_stream_2d'])
    core.update(max_missing_skeleton_fraction=0.25)
    assert core.config.max_missing_skeleton_fraction == 0.25


@pytest.mark.parametrize('name', ['calibrated', 'rgb_calibrated'])
def test_training_and_the_node_make_the_same_decision(checkpoints, trial, start, name):
    from training.evaluate import predict_windows

    frames, joints = trial
    core = _core(checkpoints[name])
    window = crop_frames(frames[start:start + WINDOW], core.preprocess)
    window_joints = joints[start:start + WINDOW]
    x = test_transform(window, core.preprocess)[None]
    j = torch.as_tensor(window_joints)[None] if core.two_stream else None
    with torch.no_grad():
        training_side = predict_windows(core.model, x, core.sampling_method, j,
                                        temperature=core.temperature)[0].double().numpy()
    node_side = core.predict_crops(window, window_joints if core.two_stream else None)
    np.testing.assert_allclose(node_side, training_side, atol=1e-6)


# ------------------------------------------------------------ joints-only models
def _training_decision(core, window_joints):
    """Return training's decision (``predict_windows``) on a window's joints (40, 25, 3)."""
    from training.evaluate import predict_windows

    with torch.no_grad():
        return predict_windows(core.model, torch.as_tensor(window_joints)[None],
                               core.sampling_method,
                               temperature=core.temperature)[0].double().numpy()


def test_joints_only_final_equals_trainings_decision(checkpoints, trial, start):
    frames, joints = trial
    core = _core(checkpoints['joints'])
    assert core.input_kind == 'joints' and core.takes_joints and not core.two_stream
    assert core.model.joint_features == 'centred_velocity' and core.temperature == 1.7
    # SkeletonGRU has no init_state/step_features: no early estimates (docs/node.md).
    assert not core.streamable
    predictions = _feed(core, frames, joints)
    assert [p.early for p in predictions] == [False]
    final = predictions[0]
    assert final.start_stamp_ns == T0 + start * FRAME_NS
    expected = _training_decision(core, joints[start:start + WINDOW])
    np.testing.assert_allclose(final.probabilities, expected, atol=1e-5)
    assert final.block == int(np.argmax(expected)) + 1
    assert final.skeleton_filled_frames == 0
    np.testing.assert_allclose(core.predict_crops(None, joints[start:start + WINDOW]),
                               expected, atol=1e-6)


def test_joints_only_short_gap_holds_then_nan_and_is_decided(checkpoints, trial, start):
    frames, joints = trial
    jobs, notes = [], []
    core = _core(checkpoints['joints'], jobs, notes)
    missing = set(range(10, 20))  # window offsets 10..19: 3 held, 7 NaN
    assert _feed(core, frames, joints, _gap(start, 10, 19)) == []
    assert len(jobs) == 1  # the stream was not restarted by the gap
    job = jobs[0]
    expected_joints = _window_joints(joints, start, missing)
    # A joints model's window features are its joints: held rows, then NaN rows.
    np.testing.assert_array_equal(job.features.numpy(), expected_joints)
    assert job.joints is None and job.skeleton_filled_frames == 10
    prediction = core.decide(job)
    np.testing.assert_allclose(prediction.probabilities,
                               _training_decision(core, expected_joints), atol=1e-5)
    assert np.isfinite(prediction.probabilities).all()
    assert prediction.start_stamp_ns == T0 + start * FRAME_NS
    assert_short_gap_counted(core.counters)
    assert core.counters['windows_aborted'] == 0
    assert [key for key, _ in notes] == ['missing_skeleton']


def test_joints_only_long_gap_skips_the_window(checkpoints, trial, start):
    frames, joints = trial
    notes = []
    core = _core(checkpoints['joints'], notes=notes)
    assert _feed(core, frames, joints, _gap(start, 8, 39)) == []
    counters = core.counters
    assert counters['windows_started'] == 1
    assert counters['windows_skipped_no_skeleton'] == 1
    assert counters['predictions'] == 0 and counters['windows_aborted'] == 0
    assert counters['frames_skeleton_held'] == HOLD
    assert counters['frames_skeleton_missing'] == 32 - HOLD
    gap_notes = [message for key, message in notes if key == 'skeleton_gap']
    assert len(gap_notes) == 1 and '32 of 40 frames' in gap_notes[0]


@pytest.mark.parametrize('gap,decided', [(20, True), (21, False)])
def test_joints_only_limit_boundary(checkpoints, trial, start, gap, decided):
    frames, joints = trial
    core = _core(checkpoints['joints'])
    out = _feed(core, frames, joints, _gap(start, 8, 8 + gap - 1))
    assert len(out) == int(decided)
    assert core.counters['windows_skipped_no_skeleton'] == int(not decided)
    if decided:
        assert out[0].skeleton_filled_frames == gap
        expected_joints = _window_joints(joints, start, set(range(8, 8 + gap)))
        np.testing.assert_allclose(out[0].probabilities,
                                   _training_decision(core, expected_joints), atol=1e-5)

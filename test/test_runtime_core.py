"""PredictorCore offline: decisions against a plainly written pipeline, and bad streams."""

import numpy as np
from pitch_predictor.kinect import WINDOW
from pitch_predictor.models.preprocessing import crop_frames, test_transform
from pitch_predictor.runtime.core import CoreConfig, CoreConfigError, PredictorCore
from pitch_predictor.start_detector import detect_start
import pytest
from runtime_fixtures import make_checkpoint, synthetic_trial
import torch

FRAME_NS = 33_333_333
T0 = 5_000_000_000
# Table II, method 2 (the tiny checkpoints' method), written out: first frames 0..3,
# step 4, 10 frames.
METHOD_2_CLIPS = [np.arange(first, first + 40, 4) for first in range(4)]


@pytest.fixture(scope='module')
def trial():
    """Render a 480x270 pitch: smaller than qHD to keep the test fast, same geometry."""
    return synthetic_trial(width=480, height=270)


@pytest.fixture(scope='module')
def bi_core(tmp_path_factory):
    """Build a core on a random bi-directional (not streamable) model."""
    path = make_checkpoint(tmp_path_factory.mktemp('m') / 'bi.pt', 'convgru2d_alexnet')
    return PredictorCore(path, device='cpu')


@pytest.fixture(scope='module')
def fwd_core(tmp_path_factory):
    """Build a core on a random forward (streamable) model."""
    path = make_checkpoint(tmp_path_factory.mktemp('m') / 'fwd.pt', 'convgru1d_alexnet')
    return PredictorCore(path, device='cpu')


def _feed(core, frames, joints, t0=T0, skip_joints=()):
    out = []
    for k in range(len(frames)):
        stamp = t0 + k * FRAME_NS
        out += core.ingest(stamp, frames[k], None if k in skip_joints else joints[k])
    return out


def _plain_probabilities(model, preprocess, window_frames, clips=METHOD_2_CLIPS):
    """Run the paper's test pipeline from the model library, one clip at a time."""
    x = test_transform(crop_frames(window_frames, preprocess), preprocess)
    with torch.no_grad():
        probs = [torch.softmax(model(x[clip][None]), dim=1)[0] for clip in clips]
    return torch.stack(probs).mean(0).double().numpy()


def test_final_prediction_matches_plain_pipeline(bi_core, trial):
    frames, joints = trial
    bi_core.reset('test')
    predictions = _feed(bi_core, frames, joints)
    assert [p.early for p in predictions] == [False]  # not streamable: no early estimates
    final = predictions[0]
    crops = crop_frames(frames, bi_core.preprocess)
    start = detect_start(crops, joints)  # the whole-trial detector, independently
    assert final.start_stamp_ns == T0 + start * FRAME_NS
    assert final.last_frame_stamp_ns == T0 + (start + WINDOW - 1) * FRAME_NS
    expected = _plain_probabilities(bi_core.model, bi_core.preprocess,
                                    frames[start:start + WINDOW])
    np.testing.assert_allclose(final.probabilities, expected, atol=1e-5)
    assert final.block == int(np.argmax(expected)) + 1
    assert final.fraction_seen == 1.0 and final.decision_latency_s > 0


def test_the_pitchers_row_offsets_reweigh_every_decision(fwd_core, trial):
    from pitch_predictor.models.decision import apply_row_offset, row_offset_vector
    frames, joints = trial
    fwd_core.reset('test')
    plain = _feed(fwd_core, frames, joints)
    fwd_core.update(row_offset_top=2.5, row_offset_bottom=-1.5)
    try:
        fwd_core.reset('test')
        shifted = _feed(fwd_core, frames, joints)
        with pytest.raises(CoreConfigError, match='row_offset_top'):
            fwd_core.update(row_offset_top=float('nan'))
        with pytest.raises(CoreConfigError, match='row_offset_bottom'):
            fwd_core.update(row_offset_bottom=25.0)
    finally:
        fwd_core.update(row_offset_top=0.0, row_offset_bottom=0.0)
    offsets = row_offset_vector(2.5, -1.5)
    assert len(shifted) == len(plain) and any(p.early for p in plain)
    for before, after in zip(plain, shifted):  # the early estimates and the final one
        expected = apply_row_offset(before.probabilities, offsets)
        np.testing.assert_allclose(after.probabilities, expected, atol=1e-9)
        assert after.block == int(np.argmax(expected)) + 1
        assert after.probabilities[:3].sum() > before.probabilities[:3].sum()  # top row up
    fwd_core.reset('test')
    again = _feed(fwd_core, frames, joints)  # back to 0: the plain probabilities
    np.testing.assert_allclose(again[-1].probabilities, plain[-1].probabilities, atol=1e-9)


def test_early_estimates_then_final(fwd_core, trial):
    frames, joints = trial
    fwd_core.reset('test')
    predictions = _feed(fwd_core, frames, joints)
    early = [p for p in predictions if p.early]
    finals = [p for p in predictions if not p.early]
    assert len(finals) == 1
    # The streaming detector confirms a start run_length (8) frames into the window:
    # the first estimate then, after 8 frames, the next ones every early_every_frames (5)
    # while the window fills: after 10, 15, ..., 35 of its 40 frames.
    every = fwd_core.config.early_every_frames
    run = fwd_core.config.detector.run_length
    assert (every, run) == (5, 8)
    assert [p.fraction_seen for p in early] == [
        seen / WINDOW for seen in [run] + list(range(every * (run // every + 1), WINDOW, every))]
    start = (finals[0].start_stamp_ns - T0) // FRAME_NS
    window = frames[start:start + WINDOW]
    np.testing.assert_allclose(finals[0].probabilities,
                               _plain_probabilities(fwd_core.model, fwd_core.preprocess,
                                                    window), atol=1e-5)
    # An early estimate = each clip's frames seen so far through the whole forward model.
    probe = early[len(early) // 2]
    seen = int(round(probe.fraction_seen * WINDOW))
    prefixes = [clip[clip < seen] for clip in METHOD_2_CLIPS]
    expected = _plain_probabilities(fwd_core.model, fwd_core.preprocess, window,
                                    [p for p in prefixes if len(p)])
    np.testing.assert_allclose(probe.probabilities, expected, atol=1e-5)


def test_looping_stream_resets_and_predicts_again(bi_core, trial):
    frames, joints = trial
    bi_core.reset('test')
    first = _feed(bi_core, frames, joints)
    second = _feed(bi_core, frames, joints)  # the same stamps again: a looping bag
    assert bi_core.counters['resets.stamp_backwards'] == 1
    assert len(first) == len(second) == 1
    assert first[0].start_stamp_ns == second[0].start_stamp_ns
    np.testing.assert_allclose(first[0].probabilities, second[0].probabilities, atol=1e-6)


def test_looping_stream_with_frames_ahead_of_skeletons(bi_core, trial):
    frames, joints = trial
    bi_core.reset('test')
    out = []
    for _ in range(2):  # each frame arrives just before its skeleton, then the loop
        for k in range(len(frames)):
            out += bi_core.ingest_frame(T0 + k * FRAME_NS, frames[k])
            out += bi_core.ingest_joints(T0 + k * FRAME_NS, joints[k])
    assert len(out) == 2
    np.testing.assert_allclose(out[0].probabilities, out[1].probabilities, atol=1e-6)


def test_gaps_resets_and_missing_frames(bi_core, trial):
    frames, joints = trial
    bi_core.reset('test')
    before = bi_core.counters.copy()
    bi_core.ingest(T0, frames[0], joints[0])
    bi_core.ingest(T0 + 3 * FRAME_NS, frames[1], joints[1])  # two frames lost
    assert bi_core.counters['frames_missing'] - before['frames_missing'] == 2
    bi_core.ingest(T0 + 60 * 1_000_000_000, frames[2], joints[2])  # a minute later
    assert bi_core.counters['resets.stream_gap'] - before['resets.stream_gap'] == 1
    bi_core.ingest(T0 + 60 * 1_000_000_000, frames[3], joints[3])  # same stamp again
    assert bi_core.counters['frames_rejected.duplicate_stamp'] \
        - before['frames_rejected.duplicate_stamp'] == 1


def test_short_skeleton_dropout_is_bridged_long_one_pauses_detection(bi_core, trial):
    frames, joints = trial
    bi_core.reset('test')
    before = bi_core.counters['frames_without_skeleton']
    # Two frames without a skeleton during the motion: the last skeleton is held.
    out = _feed(bi_core, frames, joints, t0=T0, skip_joints={44, 45})
    bi_core.flush()
    assert len(out) == 1
    assert bi_core.counters['frames_without_skeleton'] - before == 2
    # No skeletons at all: frames are still ingested, no start can be found.
    bi_core.reset('test')
    assert _feed(bi_core, frames, joints, skip_joints=set(range(len(frames)))) == []
    assert bi_core.phase == 'waiting_for_rest'


@pytest.mark.parametrize('bad', [
    np.zeros((270, 480, 3), np.float32),         # not uint8
    np.zeros((270, 480), np.uint8),              # not 3 channels
    np.zeros((540, 40, 3), np.uint8),            # too narrow for the centre crop
])
def test_bad_frames_are_counted_never_raised(bi_core, bad):
    bi_core.reset('test')
    before = bi_core.counters['frames_rejected.bad_size']
    assert bi_core.ingest_frame(T0, bad) == []
    assert bi_core.counters['frames_rejected.bad_size'] == before + 1


@pytest.mark.parametrize('joints,reason', [
    (np.full((25, 3), np.nan), 'non_finite_joints'),
    (np.zeros((20, 3)), 'wrong_joint_count'),
])
def test_bad_skeletons_are_counted(bi_core, joints, reason):
    before = bi_core.counters[f'skeletons_rejected.{reason}']
    assert bi_core.ingest_joints(T0, joints) == []
    assert bi_core.counters[f'skeletons_rejected.{reason}'] == before + 1


def test_memory_stays_bounded(bi_core, trial):
    frames, joints = trial
    bi_core.reset('test')
    for k in range(3 * bi_core.buffer.capacity):
        bi_core.ingest(T0 + k * FRAME_NS, frames[0], joints[0])  # standing still
    assert len(bi_core.buffer) == bi_core.buffer.capacity
    assert bi_core._pairer.pending_frames <= bi_core.config.max_pending_frames


def test_settings_are_validated(bi_core):
    with pytest.raises(CoreConfigError):
        CoreConfig(pair_tolerance_s=-1.0).validate()
    with pytest.raises(CoreConfigError):
        bi_core.update(sampling_method=8)
    with pytest.raises(CoreConfigError):
        bi_core.update(no_such_setting=1)
    bi_core.update(sampling_method=1)
    assert bi_core.sampling_method == 1 and len(bi_core._clips) == 2
    bi_core.update(sampling_method=0)
    assert bi_core.sampling_method == 2  # back to the checkpoint's method


def test_predict_crops_equals_plain_pipeline(bi_core, trial):
    frames, _ = trial
    crops = crop_frames(frames[20:60], bi_core.preprocess)
    np.testing.assert_allclose(
        bi_core.predict_crops(crops),
        _plain_probabilities(bi_core.model, bi_core.preprocess, frames[20:60]), atol=1e-5)


@pytest.mark.parametrize('name', ['shipped', 'convgru2d_alexnet', 'two_stream_2d'])
def test_every_backend_decides_as_eager_pytorch(tmp_path, trial, name):
    from pitch_predictor.shipped_model import default_model_path

    frames, joints = trial
    # The shipped model has trained batch-norm statistics: a model left in training mode
    # by an exporter decides differently (one did, before it was fixed).
    # The shipped RGB model (the default reads joints only and compiles no backbone).
    path = default_model_path().with_name('convgru2d_fast.pt') if name == 'shipped' \
        else make_checkpoint(tmp_path / f'{name}.pt', name)
    notes = []
    cores = {backend: PredictorCore(path, device='cpu', backend=backend,
                                    notify=lambda key, message: notes.append(message))
             for backend in ('eager', 'torchscript', 'onnxruntime')}
    for backend in ('torchscript', 'onnxruntime'):  # really compiled, not fallen back
        core = cores[backend]
        assert core.encoder.compiled and core._runner.compiled_shapes == 1, (backend, notes)
        assert not any(m.training for m in core.model.modules()), backend
    gaps = set(range(60, 66))  # two-stream: a few window frames without a skeleton
    finals = {backend: [p for p in _feed(core, frames, joints, skip_joints=gaps)
                        if not p.early] for backend, core in cores.items()}
    eager = finals.pop('eager')
    assert len(eager) == 1
    for backend, made in finals.items():
        assert len(made) == 1, backend
        assert (made[0].start_stamp_ns, made[0].block) == (eager[0].start_stamp_ns,
                                                           eager[0].block), backend
        np.testing.assert_allclose(made[0].probabilities, eager[0].probabilities, rtol=0,
                                   atol=1e-5, err_msg=backend)
    assert not [n for n in notes if 'not used' in n], notes


def test_bgr_message_is_cropped_before_conversion_with_the_same_result(bi_core):
    from types import SimpleNamespace

    from pitch_predictor.runtime.frame_encoding import FrameEncoder
    from pitch_predictor.runtime.messages import image_msg_to_pixels, Pixels

    rgb = np.random.default_rng(1).integers(0, 256, (540, 960, 3), dtype=np.uint8)
    msg = SimpleNamespace(encoding='bgr8', height=540, width=960, step=960 * 3,
                          data=np.ascontiguousarray(rgb[..., ::-1]).tobytes())
    pixels = image_msg_to_pixels(msg)
    assert pixels.bgr and not pixels.array.flags.owndata  # a view, not a converted copy
    encoder = FrameEncoder(bi_core.model, bi_core.preprocess, bi_core.device, True, 'eager')
    from_message = encoder.encode(pixels, bi_core.config.detector)
    from_rgb = encoder.encode(Pixels(rgb), bi_core.config.detector)
    np.testing.assert_array_equal(from_message.signature, from_rgb.signature)
    assert torch.equal(from_message.features, from_rgb.features)
    # ... and equal to the model library's own preprocessing of the RGB frame.
    with torch.no_grad():
        expected = bi_core.model.encode_frames(test_transform(
            crop_frames(rgb, bi_core.preprocess), bi_core.preprocess))[0]
    assert torch.equal(from_rgb.features, expected)


def test_the_torch_free_runtime_modules_import_no_torch():
    import subprocess
    import sys

    modules = ['settings', 'stream_stamps', 'skeleton_hold', 'pitch_window',
               'pairing', 'feature_buffer', 'core_statistics', 'jobs', 'decision_worker',
               'messages', 'node_params']
    code = ('import sys\nimport pitch_predictor.topics\n'
            + ''.join(f'import pitch_predictor.runtime.{m}\n' for m in modules)
            + "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == 'False'


def test_a_skeleton_crop_model_is_refused_with_the_reason(tmp_path):
    from dataclasses import replace
    from pitch_predictor.models.checkpoint import save_checkpoint
    from pitch_predictor.models.preprocessing import fast_preprocess
    from pitch_predictor.models.registry import build_model, fast_config
    model = build_model('skeleton_gru', **fast_config('skeleton_gru'))
    path = tmp_path / 'skelcrop.pt'
    save_checkpoint(path, model, model_name='skeleton_gru', model_config=model.config,
                    preprocess=replace(fast_preprocess(), crop_mode='skeleton'),
                    sampling_method=2, meta={})
    with pytest.raises(CoreConfigError, match="crop_mode 'skeleton' needs each pitch's crop"):
        PredictorCore(path)

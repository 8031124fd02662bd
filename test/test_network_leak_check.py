"""
The network leak check's pre-motion windows: every frame the pipeline reads is before the onset.

A hand-made cache whose every pixel and joint holds its own frame number lets the test
read back which source frame each training clip (every sampling method, several epochs)
and each test window (``training.evaluate``'s reader) used. No training here: the bench
itself (``bench/network_leak_check.py``, minutes) is run by hand and in ``make bench``.
"""

import importlib
import json
from pathlib import Path
import sys

import numpy as np
from pitch_predictor.data.cache import TrialCache
from pitch_predictor.kinect import WINDOW
from pitch_predictor.models.preprocessing import fast_preprocess
from pitch_predictor.models.sampling import SAMPLING_METHODS
import pytest

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / 'bench'):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))  # `training` and the bench run from the repo root

from training.dataset import ClipDataset, window_frames, window_joints  # noqa: E402

leak = importlib.import_module('network_leak_check')  # bench/ is not a package

# Onsets from the shortest possible (1 still frame) to past the window (subsampled).
ONSETS = (1, 11, 23, 37, 40, 41, 60)


def numbered_cache(folder: Path, onsets) -> TrialCache:
    """Write a cache of 90-frame trials whose pixels and joints equal their frame number."""
    n, frames = len(onsets), 90
    folder.mkdir(parents=True)
    numbers = np.arange(frames)
    np.save(folder / 'frames.npy', np.broadcast_to(
        numbers[None, :, None, None, None], (n, frames, 4, 4, 3)).astype(np.uint8))
    np.save(folder / 'joints.npy', np.broadcast_to(
        numbers[None, :, None, None], (n, frames, 25, 3)).astype(np.float32))
    labels = np.arange(n) % 9
    for name, values in (('labels', labels), ('intended', labels + 1),
                         ('participants', np.zeros(n)), ('trial_index', np.arange(n)),
                         ('true_start', onsets), ('start', np.full(n, 45))):
        np.save(folder / f'{name}.npy', np.asarray(values, dtype=np.int64))
    np.save(folder / 'start_found.npy', np.ones(n, bool))
    (folder / 'meta.json').write_text(json.dumps({
        'format_version': 2, 'participant_names': ['P1'],
        'trial_ids': [f'T{i}' for i in range(n)], 'preprocess': fast_preprocess().to_dict()}))
    return TrialCache(folder)


@pytest.mark.parametrize('onset', range(1, 91))
def test_positions_stay_before_the_onset(onset):
    positions = leak.pre_motion_positions(onset)
    assert positions.shape == (WINDOW,) and positions.dtype == np.int64
    assert positions.max() < onset and positions.min() == 0
    assert np.all(np.diff(positions) >= 0)
    if onset <= WINDOW:  # every still frame is used
        assert set(positions.tolist()) == set(range(onset))


def test_no_onset_is_refused():
    for onset in (0, -1):
        with pytest.raises(ValueError, match='onset'):
            leak.pre_motion_positions(onset)


def test_every_frame_the_pipeline_reads_is_before_the_onset(tmp_path):
    source = numbered_cache(tmp_path / 'source', ONSETS)
    cache = leak.build_pre_motion_cache(source, tmp_path / 'pre_motion')
    onsets = np.array(ONSETS)
    trials = np.arange(len(ONSETS))
    assert cache.frames.shape[:2] == (len(ONSETS), WINDOW)
    for name in ('labels', 'intended', 'participants', 'trial_index'):
        assert np.array_equal(getattr(cache, name), getattr(source, name)), name
    assert not (np.asarray(cache.start).any() or (np.asarray(cache.true_start) != -1).any())
    # Test-time windows (training.evaluate reads them with window_frames / window_joints).
    windows = window_frames(cache, trials)[..., 0, 0, 0]
    for trial, onset in enumerate(ONSETS):
        assert np.array_equal(windows[trial], leak.pre_motion_positions(onset))
    assert (window_joints(cache, trials)[..., 0, 0].max(axis=1) < onsets).all()
    # Training clips of every sampling method over several epochs, images and joints.
    for method in SAMPLING_METHODS:
        dataset = ClipDataset(str(cache.folder), trials, method, kind='rgb+joints')
        for epoch in range(5):
            dataset.set_epoch(epoch)
            for item in range(len(dataset)):
                (images, joints), label, trial = dataset[item]
                used = images[:, 0, 0, 0].numpy()
                assert used.max() < ONSETS[trial], (method, epoch, trial)
                assert np.array_equal(used, joints[:, 0, 0].numpy())
                assert label == source.labels[trial]


def test_the_pass_line_is_the_central_95_percent_of_chance():
    assert leak.binomial_band(54, 1 / 9) == (2, 11)
    inside = leak.accuracy_report(6 / 54, 54, 1 / 9)
    assert inside['within_chance_band'] and inside['chance_band_95'] == [0.037, 0.2037]
    assert inside['chance_sd'] == pytest.approx(0.0428, abs=1e-4)
    assert leak.accuracy_report(11 / 54, 54, 1 / 9)['within_chance_band']
    assert not leak.accuracy_report(12 / 54, 54, 1 / 9)['within_chance_band']
    assert not leak.accuracy_report(1 / 54, 54, 1 / 9)['within_chance_band']


def test_the_report_reads_a_runs_metrics(tmp_path):
    source = numbered_cache(tmp_path / 'source', ONSETS)
    metrics = {'num_train': 30, 'num_validation': 54, 'num_test': 108, 'epochs_run': 20,
               'stop_reason': 'epochs', 'train_seconds': 400.0,
               'history': [{'train_acc': 0.5, 'train_loss': 1.5}],
               'train': {'accuracy': 0.6, 'running_accuracy': 0.5, 'num_trials': 30},
               'validation': {'accuracy': 7 / 54}, 'test': {'accuracy': 13 / 108}}
    result = leak.summarize(metrics, source, ['python', '-m', 'training.train'], 500.0)
    assert result['pass'] and result['validation']['correct'] == 7
    assert result['validation']['chance_band_95_correct'] == [2, 11]
    assert result['trials'] == len(ONSETS) and result['every_frame_before_onset']
    assert result['onset_frames'] == {'min': 1, 'max': 60}
    assert result['train']['accuracy'] == 0.6 and result['test']['correct'] == 13
    assert json.loads(json.dumps(result)) == result
    metrics['validation']['accuracy'] = 12 / 54
    assert not leak.summarize(metrics, source, [], 1.0)['pass']

"""Training's small parts against hand-worked numbers: metrics, config, schedule, tests."""

from pathlib import Path
import sys

import numpy as np
from pitch_predictor.models.preprocessing import fast_preprocess
from pitch_predictor.models.registry import build_model, fast_config
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training.config import ConfigError, load_config, parse_overrides  # noqa: E402
from training.dataset import augment_batch, ClipCollate  # noqa: E402
from training.evaluate import predict_windows  # noqa: E402
from training.metrics import (  # noqa: E402
    confusion_matrix, expected_calibration_error, mean_and_std, per_class_accuracy,
    row_column_accuracy)
from training.perturbations import missing_frames, position_shift  # noqa: E402
from training.train import learning_rate  # noqa: E402


def test_confusion_and_per_block_accuracy():
    labels = np.array([0, 0, 1, 2, 2, 2])
    preds = np.array([0, 1, 1, 2, 0, 2])
    matrix = confusion_matrix(labels, preds, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    np.testing.assert_allclose(per_class_accuracy(matrix), [0.5, 1.0, 2 / 3])


def test_row_and_column_accuracy_by_hand():
    # Blocks 1..9 row by row: 1 -> 4 keeps the column, 1 -> 2 keeps the row, 1 -> 5 neither.
    labels = np.array([0, 0, 0, 0, 8])
    preds = np.array([0, 3, 1, 4, 8])
    matrix = confusion_matrix(labels, preds, 9)
    assert row_column_accuracy(matrix) == {'row': pytest.approx(3 / 5),
                                           'column': pytest.approx(3 / 5)}
    assert row_column_accuracy(np.eye(9)) == {'row': 1.0, 'column': 1.0}


def test_ece_by_hand():
    # Two bins used with 10 bins: confidences 0.9, 0.9 (one right) and 0.6 (right).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    labels = np.array([0, 1, 1])
    # bin (0.8, 0.9]: acc 0.5, conf 0.9, weight 2/3; bin (0.5, 0.6]: acc 1, conf 0.6, 1/3.
    expected = 2 / 3 * abs(0.5 - 0.9) + 1 / 3 * abs(1.0 - 0.6)
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == pytest.approx(0.0)


def test_mean_and_std():
    assert mean_and_std([70.0, 74.0]) == {'mean': 72.0, 'std': pytest.approx(2 ** 1.5), 'n': 2}
    assert mean_and_std([70.0])['std'] == 0.0


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / 'fast_x.yaml'
    path.write_text('model: convgru1d_alexnet\nepochs: 3\nmodel_config:\n  dropout: 0.2\n')
    cfg = load_config(str(path), parse_overrides(['lr=3e-4', 'model_config.fusion=flat',
                                                  'preprocess=fast']))
    assert cfg.name == 'fast_x' and cfg.model == 'convgru1d_alexnet' and cfg.epochs == 3
    assert cfg.lr == pytest.approx(3e-4) and cfg.preprocess == 'fast'
    assert cfg.model_config == {'dropout': 0.2, 'fusion': 'flat'}
    assert cfg.run_dir() == Path('runs/fast_x')
    with pytest.raises(ConfigError, match='unknown config key'):
        load_config(None, {'epoch': 3})
    with pytest.raises(ConfigError, match='key=value'):
        parse_overrides(['epochs'])


def test_learning_rate_schedule():
    cfg = load_config(None, {'lr': 1.0, 'lr_schedule': 'cosine', 'warmup_epochs': 1})
    # 10 steps per epoch, 5 epochs: warmup 1/10 .. 10/10, then half a cosine to 0.
    assert learning_rate(cfg, 0, 50, 10) == pytest.approx(0.1)
    assert learning_rate(cfg, 9, 50, 10) == pytest.approx(1.0)
    assert learning_rate(cfg, 10, 50, 10) == pytest.approx(1.0)
    assert learning_rate(cfg, 30, 50, 10) == pytest.approx(0.5)
    assert learning_rate(cfg, 50, 50, 10) == pytest.approx(0.0, abs=1e-12)
    constant = load_config(None, {'lr': 1e-4})
    assert learning_rate(constant, 123, 200, 10) == 1e-4


def test_missing_frames_zeroes_exactly_that_many():
    windows = torch.ones(3, 40, 3, 4, 4)
    out = missing_frames(4, np.random.default_rng(0))(windows)
    zero = (out == 0).flatten(2).all(dim=2)
    assert zero.sum(dim=1).tolist() == [4, 4, 4]
    assert (out[~zero] == 1).all() and (windows == 1).all()


def test_position_shift_moves_content_sideways():
    preprocess = fast_preprocess()  # 240 crop shown at 112 px: 15 crop px = 7 input px
    frame = torch.zeros(112, 112)
    frame[:, 50:] = 1.0  # a vertical edge at column 50
    windows = frame.expand(1, 2, 3, 112, 112).clone()
    out = position_shift(15, preprocess, np.random.default_rng(0))(windows)
    edge = int((out[0, 0, 0, 56] > 0.5).nonzero()[0])
    assert edge in (43, 57)  # moved 7 px left or right
    assert torch.equal(out[0, 0], out[0, 1])  # the whole clip moves together


def test_test_time_averaging_equals_per_clip_forward():
    torch.manual_seed(0)
    config = fast_config('convgru2d_alexnet')
    config.update(channels=[8, 16, 16, 16, 16], fc_sizes=[16, 16])
    model = build_model('convgru2d_alexnet', **config).eval()
    windows = torch.randn(2, 40, 3, 112, 112)
    got = predict_windows(model, windows, 2)
    # Method 2 tests the clips starting at 0..3 with step 4, length 10.
    with torch.no_grad():
        expected = torch.stack([model(windows[:, first:40:4]).softmax(-1)
                                for first in range(4)]).mean(0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_batch_augmentation_is_seeded_by_its_trials():
    clips = torch.randint(0, 256, (2, 3, 120, 120, 3), dtype=torch.uint8)
    preprocess = fast_preprocess()
    a = augment_batch(clips, [4, 9], preprocess, seed=1, epoch=0)
    assert a.shape == (2, 3, 3, 112, 112) and a.dtype == torch.float32
    # Wherever it runs (a loader worker or the main process): same inputs, same output.
    assert torch.equal(a, augment_batch(clips, [4, 9], preprocess, seed=1, epoch=0))
    assert not torch.equal(a, augment_batch(clips, [4, 9], preprocess, seed=1, epoch=1))
    batch = ClipCollate(preprocess, seed=1, augment=True)(
        [(clips[0], 3, 4), (clips[1], 5, 9)])
    assert torch.equal(batch[0], a) and batch[1].tolist() == [3, 5]
    assert batch[2].tolist() == [4, 9]

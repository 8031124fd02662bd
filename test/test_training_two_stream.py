"""Training every input kind: joints-only learns, two-stream trains and reloads, clips in sync."""

import json
from pathlib import Path
import sys

import numpy as np
from pitch_predictor.data.cache import TrialCache
from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
from pitch_predictor.models.preprocessing import fast_preprocess
from pitch_predictor.models.registry import build_model, fast_config
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training import train  # noqa: E402
from training.dataset import ClipCollate, ClipDataset, window_start  # noqa: E402
from training.evaluate import predict_trials, predict_windows  # noqa: E402
from training.splits import make_split  # noqa: E402

TWO_STREAM = ['model_preset=fast', 'preprocess=fast', 'sampling=2', 'batch_size=6',
              'model_config.channels=[8,16,16,16,16]', 'model_config.fc_sizes=[32,32]',
              'model_config.joint_hidden=16', 'lr=1e-3', 'num_workers=0', 'threads=1',
              'seed=3', 'eval_train=false']


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_joints_model_overfits_a_tiny_batch(tiny_cache):
    # 18 clips, no dropout, no augmentation: a network that cannot fit these has a bug
    # in its inputs, its loss or its gradients.
    cache = TrialCache(tiny_cache)
    trials = make_split(cache, 'paper', val_per_group=0).train
    dataset = ClipDataset(str(tiny_cache), trials, 2, kind='joints', seed=0)
    joints, labels, _ = ClipCollate(None, 0, augment=False)([dataset[i] for i in
                                                             range(len(dataset))])
    torch.manual_seed(0)
    model = build_model('skeleton_gru', **{**fast_config('skeleton_gru'), 'dropout': 0.0})
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    accuracy, steps = 0.0, 0
    while steps < 400 and accuracy != 1.0:
        steps += 1
        logits = model(joints)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        accuracy = float((logits.argmax(-1) == labels).float().mean())
    assert accuracy == 1.0, f'{accuracy:.2f} after {steps} steps (loss {loss.item():.3f})'
    assert len(set(labels.tolist())) == 9  # every block is in the batch


def test_two_stream_clips_hold_the_joints_of_the_same_frames(tiny_cache):
    cache = TrialCache(tiny_cache)
    trials = make_split(cache, 'paper').train[:3]
    pairs = ClipDataset(str(tiny_cache), trials, 2, kind='rgb+joints', seed=4)
    images = ClipDataset(str(tiny_cache), trials, 2, kind='rgb', seed=4)
    joints = ClipDataset(str(tiny_cache), trials, 2, kind='joints', seed=4)
    for item in range(len(trials)):
        (frames, skeleton), label, trial = pairs[item]
        assert torch.equal(frames, images[item][0]) and torch.equal(skeleton, joints[item][0])
        # Find the sampled frames in the trial by their pixels; their joints must match.
        start = window_start(cache, trial)
        window = torch.from_numpy(np.array(cache.frames[trial, start:start + 40]))
        index = [next(k for k in range(40) if torch.equal(window[k], f)) for f in frames]
        expected = np.asarray(cache.joints[trial, start + np.array(index)])
        np.testing.assert_array_equal(skeleton.numpy(), expected)
        assert label == int(cache.labels[trial])
    batch, labels, _ = ClipCollate(None, 0, augment=False)([pairs[0], pairs[1]])
    assert batch[0].shape[:2] == batch[1].shape[:2] == (2, 10)
    assert batch[1].shape[2:] == (25, 3) and labels.shape == (2,)


def test_two_stream_test_time_averaging_equals_per_clip_forward():
    torch.manual_seed(0)
    config = fast_config('two_stream_2d')
    config.update(channels=[8, 16, 16, 16, 16], fc_sizes=[16, 16], joint_hidden=8)
    model = build_model('two_stream_2d', **config).eval()
    windows = torch.randn(2, 40, 3, 112, 112)
    joints = torch.randn(2, 40, 25, 3)
    joints[0, 5:9] = float('nan')  # a tracking gap
    got = predict_windows(model, windows, 2, joints)
    with torch.no_grad():
        expected = torch.stack([model(windows[:, k:40:4], joints[:, k:40:4]).softmax(-1)
                                for k in range(4)]).mean(0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('name,mode', [('two_stream_2d', 'features'), ('two_stream_1d', 'late')])
def test_two_stream_trains_one_epoch_and_writes_a_loadable_checkpoint(
        tiny_cache, tmp_path, name, mode):
    out = tmp_path / name
    result = train.main(['--data', str(tiny_cache), '--out', str(out), f'model={name}',
                         *TWO_STREAM, f'model_config.fusion_mode={mode}', 'epochs=1',
                         'aux_loss_weight=0.5', 'joint_augment.rotate_deg=10',
                         'joint_augment.tempo=0.1', 'joint_augment.drop_joints=0.05'])
    assert result['epochs_run'] == 1 and np.isfinite(result['history'][0]['train_loss'])
    ckpt = load_checkpoint(out / 'model.pt')
    assert ckpt.model_name == name and ckpt.model_config['fusion_mode'] == mode
    model = build_model_from_checkpoint(ckpt)
    assert model.input_kind == 'rgb+joints'
    # The reloaded model, through the evaluator with the stored temperature, gives the
    # run's test predictions.
    cache = TrialCache(tiny_cache)
    test = make_split(cache, 'paper').test
    probs = predict_trials(model, cache, test, ckpt.sampling_method, ckpt.preprocess,
                           torch.device('cpu'), temperature=ckpt.meta['temperature'])
    metrics = json.loads((out / 'metrics.json').read_text())
    labels = np.asarray(cache.labels)[test]
    assert float((probs.argmax(1) == labels).mean()) == pytest.approx(
        metrics['test']['accuracy'])


def test_streaming_two_stream_estimate_ends_at_the_full_clip_prediction(tiny_cache):
    from training.evaluate import anticipation_probabilities
    torch.manual_seed(1)
    config = fast_config('two_stream_1d')
    config.update(channels=[8, 16, 16, 16, 16], fc_sizes=[16, 16], joint_hidden=8,
                  fusion='mean_flat')
    model = build_model('two_stream_1d', **config).eval()
    cache = TrialCache(tiny_cache)
    trials = np.arange(4)
    preprocess = fast_preprocess()
    fractions, probs = anticipation_probabilities(model, cache, trials, 2, preprocess,
                                                  torch.device('cpu'))
    full = predict_trials(model, cache, trials, 2, preprocess, torch.device('cpu'))
    assert probs.shape == (4, 10, 9) and fractions[-1] <= 1.0
    np.testing.assert_allclose(probs[:, -1], full, atol=1e-5)

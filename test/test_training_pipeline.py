"""
Training pipeline on a tiny generated set: one epoch, every output, resume, export, DDP.

The set is 1 participant x 9 blocks x 4 trials (18 train, 18 test) from the simulator,
cached once per session (``conftest.tiny_cache``); the networks are narrow so every run
takes seconds on the CPU.
"""

import csv
import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
from pitch_predictor.data.cache import paper_split, TrialCache
from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
from pitch_predictor.models.sampling import clip_length
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training import train  # noqa: E402
from training.config import ConfigError  # noqa: E402
from training.export import export  # noqa: E402

TINY = ['model=convgru2d_alexnet', 'model_preset=fast', 'preprocess=fast', 'sampling=2',
        'model_config.channels=[8,16,16,16,16]', 'model_config.fc_sizes=[32,32]',
        'batch_size=4', 'lr=1e-3', 'num_workers=1', 'seed=7']
OUTPUTS = ('state.pt', 'model.pt', 'metrics.json', 'confusion.csv', 'confusion.png',
           'curves.png', 'predictions.csv', 'config.yaml')


def run_train(cache: Path, out: Path, *extra: str) -> dict:
    return train.main(['--data', str(cache), '--out', str(out), *TINY, *extra])


@pytest.fixture(scope='module')
def trained_run(tiny_cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('run')
    run_train(tiny_cache, out, 'epochs=1')
    return out


def test_one_epoch_writes_every_output(tiny_cache, trained_run):
    for name in OUTPUTS:
        assert (trained_run / name).stat().st_size > 0, name
    metrics = json.loads((trained_run / 'metrics.json').read_text())
    cache = TrialCache(tiny_cache)
    _, test_idx = paper_split(cache)
    assert metrics['num_test'] == len(test_idx) > 0
    assert metrics['epochs_run'] == 1 and len(metrics['history']) == 1
    # Time blocked on the input pipeline is measured inside the epoch's time.
    history = metrics['history'][0]
    # Measured times (they vary run to run): only their order is known.
    assert 0.0 <= history['data_wait_seconds'] <= history['epoch_seconds']
    assert metrics['data_wait_fraction'] == pytest.approx(
        history['data_wait_seconds'] / history['epoch_seconds'])
    # Accuracy and the confusion matrix, recomputed from the per-trial predictions.
    with (trained_run / 'predictions.csv').open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(test_idx)
    true = np.array([int(r['true_block']) for r in rows])
    pred = np.array([int(r['pred_block']) for r in rows])
    assert list(true) == [int(cache.labels[t]) + 1 for t in test_idx]
    probs = np.array([[float(r[f'p_block{b}']) for b in range(1, 10)] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert metrics['test']['accuracy'] == pytest.approx(float((true == pred).mean()))
    matrix = np.array(metrics['test']['confusion_matrix'])
    for t, p in zip(true, pred):
        matrix[t - 1, p - 1] -= 1
    assert not matrix.any()
    with (trained_run / 'confusion.csv').open() as f:
        table = list(csv.reader(f))
    assert table[0][1:] == [str(b) for b in range(1, 10)] and len(table) == 10
    # The ECE written out from the same probabilities (printed with 5 decimals).
    confidence, correct = probs.max(1), probs.argmax(1) + 1 == true
    ece = sum(inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
              for inside in ((confidence > k / 10) & (confidence <= (k + 1) / 10)
                             for k in range(10)) if inside.any())
    assert metrics['test']['ece'] == pytest.approx(ece, abs=1e-4)
    # The run's model.pt is the node's checkpoint format.
    ckpt = load_checkpoint(trained_run / 'model.pt')
    assert ckpt.model_name == 'convgru2d_alexnet' and ckpt.sampling_method == 2
    assert ckpt.preprocess.stored_size == 120 and ckpt.preprocess.output_size == 112


def test_resume_continues_and_refuses_another_run(tiny_cache, trained_run, tmp_path):
    first = json.loads((trained_run / 'metrics.json').read_text())['history'][0]
    resumed = run_train(tiny_cache, trained_run, 'epochs=2')
    assert resumed['epochs_run'] == 2
    # Epoch 1 was loaded from state.pt, not trained again (its timing is the old one).
    assert resumed['history'][0] == first
    # The resume state is written beside and renamed: no half-written file is left.
    assert not (trained_run / 'state.pt.tmp').exists()
    with pytest.raises(ConfigError, match='different run'):
        run_train(tiny_cache, trained_run, 'epochs=3', 'sampling=5')


def test_same_seed_same_weights(tiny_cache, tmp_path):
    run_train(tiny_cache, tmp_path / 'a', 'epochs=1', 'eval_every=0')
    run_train(tiny_cache, tmp_path / 'b', 'epochs=1', 'eval_every=0')
    a = load_checkpoint(tmp_path / 'a' / 'model.pt').state_dict
    b = load_checkpoint(tmp_path / 'b' / 'model.pt').state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_export_round_trips_through_onnx(trained_run, tmp_path):
    import onnxruntime

    report = export(trained_run / 'model.pt', tmp_path / 'node.pt', tmp_path / 'model.onnx')
    assert report['checkpoint_max_abs_diff'] == 0.0
    assert report['max_abs_diff_logits'] < 1e-4
    # Independent of export's own check: the re-saved checkpoint, loaded the way the
    # node loads it, against ONNX Runtime on a fresh input.
    model = build_model_from_checkpoint(load_checkpoint(tmp_path / 'node.pt'), 'cpu')
    clips = torch.rand(2, clip_length(2), 3, 112, 112) * 4 - 2
    with torch.no_grad():
        expected = model(clips).numpy()
    session = onnxruntime.InferenceSession(str(tmp_path / 'model.onnx'),
                                           providers=['CPUExecutionProvider'])
    got = session.run(None, {session.get_inputs()[0].name: clips.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.slow
def test_torchrun_two_gloo_ranks_agree(tiny_cache, tmp_path):
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
               '--nproc_per_node', '2', '-m', 'training.train', '--data', str(tiny_cache),
               '--out', str(tmp_path / 'ddp'), *TINY, 'epochs=1', 'num_workers=0']
    env = dict(os.environ, TQDM_DISABLE='1', OMP_NUM_THREADS='1')
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    metrics = json.loads((tmp_path / 'ddp' / 'metrics.json').read_text())
    assert metrics['world_size'] == 2
    assert metrics['max_weight_diff_to_rank0'] == [0.0, 0.0]
    assert load_checkpoint(tmp_path / 'ddp' / 'model.pt').model_name == 'convgru2d_alexnet'


def test_learning_curves_of_several_runs_in_one_figure(trained_run, tmp_path):
    import cv2
    from training import plots
    out = tmp_path / 'curves.png'
    assert plots.main(['--runs', str(trained_run), str(trained_run), '--labels', 'a', 'b',
                       '--out', str(out)]) == 0
    image = cv2.imread(str(out))
    assert image is not None and image.shape[:2] == (462, 770)  # 7 x 4.2 in at 110 dpi
    with pytest.raises(SystemExit):
        plots.main(['--runs', str(tmp_path), '--out', str(out)])  # not a run folder
    with pytest.raises(SystemExit):
        plots.main(['--runs', str(trained_run), '--labels', 'a', 'b', '--out', str(out)])

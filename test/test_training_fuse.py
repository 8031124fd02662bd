"""fuse.py end to end: two tiny runs into a late and a feature fusion, fitted on validation."""

import json
from pathlib import Path
import sys

import numpy as np
from pitch_predictor.data.cache import TrialCache
from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training import fuse, train  # noqa: E402
from training.evaluate import predict_trials  # noqa: E402
from training.splits import make_split  # noqa: E402

COMMON = ['sampling=2', 'batch_size=6', 'num_workers=0', 'threads=1', 'seed=5',
          'eval_train=false', 'model_preset=fast', 'preprocess=fast']
RGB = ['model=convgru2d_alexnet', 'model_config.channels=[8,16,16,16,16]',
       'model_config.fc_sizes=[32,32]', 'model_config.fusion=mean_flat', 'lr=1e-3']
JOINTS = ['model=skeleton_gru', 'lr=3e-3']


@pytest.fixture(scope='module')
def runs(tiny_cache, tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('sources')
    train.main(['--data', str(tiny_cache), '--out', str(root / 'rgb'), *COMMON, *RGB,
                'epochs=1'])
    train.main(['--data', str(tiny_cache), '--out', str(root / 'joints'), *COMMON, *JOINTS,
                'epochs=3'])
    return root / 'rgb', root / 'joints'


def reevaluate(out: Path, tiny_cache: Path) -> float:
    """Return the test accuracy of out/model.pt through the evaluator (its temperature)."""
    cache = TrialCache(tiny_cache)
    ckpt = load_checkpoint(out / 'model.pt')
    model = build_model_from_checkpoint(ckpt)
    test = make_split(cache, 'paper').test
    probs = predict_trials(model, cache, test, ckpt.sampling_method, ckpt.preprocess,
                           torch.device('cpu'), temperature=ckpt.meta['temperature'])
    return float((probs.argmax(1) == np.asarray(cache.labels)[test]).mean())


def test_late_fusion_fits_the_weight_on_validation(runs, tiny_cache, tmp_path):
    rgb, joints = runs
    result = fuse.main(['--rgb', str(rgb), '--joints', str(joints), '--out',
                        str(tmp_path / 'late'), '--mode', 'late'])
    assert result['model'] == 'two_stream_2d' and result['num_validation'] == 9
    search = result['late_weight_search']
    assert [s['late_weight'] for s in search] == list(fuse.LATE_WEIGHTS)
    best = min(s['val_nll'] for s in search)
    chosen = next(s for s in search if s['late_weight'] == result['late_weight'])
    assert chosen['val_nll'] == best
    ckpt = load_checkpoint(tmp_path / 'late' / 'model.pt')
    assert ckpt.model_config['fusion_mode'] == 'late'
    assert ckpt.model_config['late_weight'] == result['late_weight']
    assert ckpt.meta['temperature'] == result['temperature'] > 0
    metrics = json.loads((tmp_path / 'late' / 'metrics.json').read_text())
    assert metrics['test']['num_trials'] == 18 and 'uncalibrated' in metrics['validation']
    assert reevaluate(tmp_path / 'late', tiny_cache) == pytest.approx(
        metrics['test']['accuracy'])
    # The branches are the source runs' networks, weights unchanged.
    source = load_checkpoint(rgb / 'model.pt').state_dict
    for key, value in source.items():
        assert torch.equal(ckpt.state_dict[f'rgb.{key}'], value), key


def test_feature_fusion_trains_only_the_head(runs, tiny_cache, tmp_path):
    rgb, joints = runs
    result = fuse.main(['--rgb', str(rgb), '--joints', str(joints), '--out',
                        str(tmp_path / 'features'), '--mode', 'features', '--epochs', '3',
                        '--patience', '0'])
    assert len(result['head_history']) == 3
    ckpt = load_checkpoint(tmp_path / 'features' / 'model.pt')
    assert ckpt.model_config['fusion_mode'] == 'features'
    for run, prefix in ((rgb, 'rgb.'), (joints, 'joints.')):
        for key, value in load_checkpoint(run / 'model.pt').state_dict.items():
            if prefix == 'rgb.' and key.startswith('head.'):
                continue  # the RGB-only head has no place in feature fusion
            assert torch.equal(ckpt.state_dict[prefix + key], value), prefix + key
    assert reevaluate(tmp_path / 'features', tiny_cache) == pytest.approx(
        result['test']['accuracy'])


def test_runs_with_other_splits_are_refused(runs, tiny_cache, tmp_path):
    rgb, _ = runs
    other = tmp_path / 'joints_nval'
    train.main(['--data', str(tiny_cache), '--out', str(other), *COMMON, *JOINTS,
                'epochs=1', 'val_per_group=0'])
    with pytest.raises(fuse.FuseError, match='different splits'):
        fuse.main(['--rgb', str(rgb), '--joints', str(other), '--out', str(tmp_path / 'x')])


def test_two_stream_training_can_start_from_the_two_runs(runs, tiny_cache, tmp_path):
    rgb, joints = runs
    out = tmp_path / 'init'
    # lr 0: one epoch changes no weight, so model.pt shows what was loaded.
    train.main(['--data', str(tiny_cache), '--out', str(out), *COMMON,
                'model=two_stream_2d', 'model_config.channels=[8,16,16,16,16]',
                'model_config.fc_sizes=[32,32]', 'model_config.fusion=mean_flat',
                'lr=0', 'weight_decay=0', 'epochs=1', f'init_rgb={rgb / "model.pt"}',
                f'init_joints={joints / "model.pt"}'])
    fused = load_checkpoint(out / 'model.pt').state_dict
    for run, prefix in ((rgb, 'rgb.'), (joints, 'joints.')):
        for key, value in load_checkpoint(run / 'model.pt').state_dict.items():
            if key.startswith('head.') and prefix == 'rgb.' or 'running_' in key \
                    or 'num_batches' in key:
                continue  # feature fusion has its own heads; BatchNorm statistics move
            assert torch.equal(fused[prefix + key], value), prefix + key

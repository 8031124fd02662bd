"""Pose supervision of the RGB networks: the loss by hand, the probe, a real run, resuming."""

from pathlib import Path
import sys

from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
from pitch_predictor.models.registry import build_model
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training import train  # noqa: E402
from training.config import ConfigError  # noqa: E402
from training.pose_supervision import (  # noqa: E402
    make_pose_probe, pose_supervised_loss, pose_targets)

SMALL = {'channels': [8, 16, 16, 16, 16], 'fc_sizes': [32, 32], 'batch_norm': True}
TINY = ['model=convgru2d_alexnet', 'model_preset=fast', 'preprocess=fast', 'sampling=2',
        'model_config.channels=[8,16,16,16,16]', 'model_config.fc_sizes=[32,32]',
        'batch_size=4', 'lr=1e-3', 'num_workers=0', 'seed=3', 'threads=1',
        'eval_train=false']


def small_model(**extra) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model('convgru2d_alexnet', **{**SMALL, 'input_size': 112, **extra})


def test_the_loss_is_cross_entropy_plus_the_weighted_pose_error_by_hand():
    model = small_model().eval()
    probe = make_pose_probe(model, 112)
    torch.manual_seed(1)
    clips = torch.rand(2, 3, 3, 112, 112)
    joints = torch.randn(2, 3, 25, 3) * 0.3 + torch.tensor([0.0, 0.0, 3.0])
    joints[0, 1, 7] = float('nan')  # a missing joint does not count
    labels = torch.tensor([4, 0])
    logits, loss, mse = pose_supervised_loss(model, probe, clips, joints, labels, 0.5)
    torch.testing.assert_close(logits, model(clips))
    feats = model.backbone(clips.flatten(0, 1))
    pred = probe(feats).view(2, 3, 25, 2)
    target, seen = pose_targets(joints)
    assert seen.sum() == 2 * 3 * 25 - 1
    errors = [(pred[b, t, j] - target[b, t, j]).pow(2).mean()
              for b in range(2) for t in range(3) for j in range(25) if seen[b, t, j, 0]]
    expected_mse = torch.stack(errors).mean()
    torch.testing.assert_close(mse, expected_mse.detach())
    ce = torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(loss, ce + 0.5 * expected_mse)


def test_the_probe_fits_the_backbone_and_other_networks_are_refused():
    model = small_model()
    probe = make_pose_probe(model, 112)
    out = model.backbone(torch.zeros(1, 3, 112, 112))
    assert probe.linear.in_features == out[0].numel()
    assert probe.linear.out_features == 50
    with pytest.raises(ValueError, match='RGB ConvGRU'):
        make_pose_probe(build_model('skeleton_gru', hidden=8, layers=1, dropout=0.0,
                                    num_classes=9), 112)
    with pytest.raises(ValueError, match='motion'):
        make_pose_probe(small_model(motion=True), 112)


def test_a_pose_supervised_run_resumes_and_exports_the_plain_network(tiny_cache, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / 'run'
    result = train.main(['--data', str(tiny_cache), '--out', str(out), *TINY, 'epochs=2',
                         'pose_loss_weight=1'])
    assert len(result['history']) == 2 and all(h['pose_mse'] > 0 for h in result['history'])
    state = torch.load(out / 'state.pt', map_location='cpu', weights_only=True)
    assert state['pose_probe']['linear.weight'].shape[0] == 50
    # model.pt is the plain RGB network: the probe is not in it, and it runs on clips.
    ckpt = load_checkpoint(out / 'model.pt')
    model = build_model_from_checkpoint(ckpt).eval()
    assert set(model.state_dict()) == set(small_model().state_dict())
    assert model(torch.rand(1, 3, 3, 112, 112)).shape == (1, 9)
    # A larger epochs= continues the run with the probe restored.
    again = train.main(['--data', str(tiny_cache), '--out', str(out), *TINY, 'epochs=3',
                        'pose_loss_weight=1'])
    assert len(again['history']) == 3
    assert again['history'][:2] == result['history']
    # The same folder without pose supervision is another run: refused, not half-resumed.
    with pytest.raises(ConfigError, match='pose_loss_weight'):
        train.main(['--data', str(tiny_cache), '--out', str(out), *TINY, 'epochs=4'])


def test_pose_supervision_of_a_joints_model_is_a_config_error(tiny_cache, tmp_path):
    with pytest.raises(ConfigError, match='RGB ConvGRU'):
        train.main(['--data', str(tiny_cache), '--out', str(tmp_path / 'j'),
                    'model=skeleton_gru', 'model_preset=fast', 'epochs=1',
                    'pose_loss_weight=1', 'num_workers=0'])

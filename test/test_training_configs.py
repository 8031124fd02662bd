"""Every fast config loads, builds its network and parses its joint augmentation."""

from pathlib import Path
import sys

from pitch_predictor.models.registry import build_model
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training.config import load_config  # noqa: E402
from training.joint_augment import JointAugmentConfig  # noqa: E402
from training.train import resolve_model_config, resolve_preprocess  # noqa: E402

FAST = sorted((ROOT / 'training' / 'configs').glob('fast_*.yaml'))


@pytest.mark.parametrize('path', FAST, ids=[p.stem for p in FAST])
def test_fast_config_builds(path):
    cfg = load_config(str(path))
    preprocess = resolve_preprocess(cfg.preprocess)
    model = build_model(cfg.model, **resolve_model_config(cfg))
    JointAugmentConfig.from_dict(cfg.joint_augment)
    assert cfg.threads == 1 and cfg.val_per_group == 1
    if model.input_kind != 'joints':
        assert model.input_size == preprocess.output_size
    if cfg.aux_loss_weight > 0:
        assert model.input_kind == 'rgb+joints'


def test_two_stream_and_skeleton_configs_use_centred_joints_and_augmentation():
    for name in ('fast_two_stream_2d', 'fast_two_stream_1d', 'fast_skeleton_gru'):
        cfg = load_config(str(ROOT / 'training' / 'configs' / f'{name}.yaml'))
        config = resolve_model_config(cfg)
        # Pitcher-centred (camera placement and body size drop out), never the raw frame.
        assert config.get('joint_features', config.get('features')) in (
            'centred', 'centred_velocity'), name
        augment = JointAugmentConfig.from_dict(cfg.joint_augment)
        assert augment.spatial and augment.tempo > 0, name
        assert cfg.patience > 0, name

"""The RGB-only pose GRU: its pose bottleneck, the node's cached per-frame path, the recipe."""

import json
from pathlib import Path
import sys

import numpy as np
from pitch_predictor.data.cache import TrialCache
from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
from pitch_predictor.models.joints import image_joint_features, JOINT_INDEX
from pitch_predictor.models.preprocessing import fast_preprocess, test_transform
from pitch_predictor.models.registry import build_model, fast_config
import pytest
from runtime_fixtures import cached_and_offline_decisions
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training import pose_gru, train  # noqa: E402

SMALL = ['model_config.channels=[8,16,16,16,16]', 'model_config.fc_sizes=[32,32]',
         'batch_size=4', 'num_workers=0', 'threads=1', 'eval_train=false', 'seed=2']


def small_model():
    torch.manual_seed(0)
    config = fast_config('pose_gru_alexnet')
    config.update(channels=[8, 16, 16, 16], hidden=16)
    return build_model('pose_gru_alexnet', **config).eval()


def test_the_per_frame_output_is_the_predicted_pose_and_the_gru_reads_it_back():
    model = small_model()
    frames = torch.rand(6, 3, 112, 112)
    pseudo = model.backbone(frames)
    uv = model.predict_pose(frames)
    assert pseudo.shape == (6, 25, 3)
    torch.testing.assert_close(pseudo[..., :2], uv)
    assert bool((pseudo[..., 2] == 1).all())
    # The image features of the pseudo-joints are the predicted positions, re-centred on
    # the first frame's SpineBase and scaled by its torso: the pose goes through intact.
    features = image_joint_features(pseudo[None])[0]
    base, top = JOINT_INDEX['SpineBase'], JOINT_INDEX['SpineShoulder']
    torso = (uv[0, top] - uv[0, base]).norm()
    torch.testing.assert_close(features[..., :2] * torso + uv[0, base], uv, atol=1e-5,
                               rtol=1e-5)
    clips = torch.rand(2, 10, 3, 112, 112)
    torch.testing.assert_close(
        model(clips), model.joints(model.backbone(clips.flatten(0, 1)).unflatten(0, (2, 10))))


@pytest.mark.parametrize('backend', ['eager', 'onnxruntime'])
def test_the_nodes_cached_frames_give_the_evaluators_decision(backend):
    model = small_model()
    node, offline, shape, failures = cached_and_offline_decisions(model, backend)
    assert shape == (25, 3)  # 75 numbers cached per frame
    assert not failures
    assert np.abs(node - offline).max() < 1e-5


def test_the_two_step_recipe_assembles_one_rgb_only_checkpoint(tiny_cache, tmp_path):
    torch.set_num_threads(1)
    pose_run, gru_run = tmp_path / 'pose', tmp_path / 'gru'
    train.main(['--config', str(ROOT / 'training/configs/fast_convgru2d_pose.yaml'),
                '--data', str(tiny_cache), '--out', str(pose_run), *SMALL, 'epochs=1',
                'max_minutes=0', f'extra_train_data={tiny_cache}'])  # as extra pitchers
    poses = tmp_path / 'poses'
    assert pose_gru.main(['cache', '--pose-run', str(pose_run), '--out', str(poses)]) == 0
    images, cached = TrialCache(tiny_cache), TrialCache(poses)
    assert cached.joints.shape == images.joints.shape
    np.testing.assert_array_equal(np.asarray(cached.labels), np.asarray(images.labels))
    assert bool((np.asarray(cached.joints)[..., 2] == 1).all())
    # The cached poses are what the assembled model computes from the images.
    model, ckpt = pose_gru.pose_model_from_run(pose_run)
    crops = torch.from_numpy(np.array(images.frames[3, :5]))
    torch.testing.assert_close(torch.from_numpy(np.array(cached.joints[3, :5])),
                               model.backbone(test_transform(crops, ckpt.preprocess)),
                               atol=1e-5, rtol=1e-5)
    train.main(['--config', str(ROOT / 'training/configs/fast_pose_gru.yaml'),
                '--data', str(poses), '--out', str(gru_run), 'epochs=2', 'num_workers=0',
                'eval_train=false', 'model_config.hidden=16', f'extra_train_data={poses}'])
    assert json.loads((gru_run / 'metrics.json').read_text())['num_extra_train'] > 0
    out = tmp_path / 'pose_gru.pt'
    report = pose_gru.assemble(pose_run, gru_run, out)
    assert report['validation_max_prob_diff'] < 1e-4
    assert report['test']['num_trials'] == 18
    combined = load_checkpoint(out)
    assert combined.model_name == 'pose_gru_alexnet' and combined.input_kind == 'rgb'
    gru_metrics = json.loads((gru_run / 'metrics.json').read_text())
    assert combined.meta['temperature'] == gru_metrics['temperature']
    assert combined.meta['accuracy'] == report['test']['accuracy']
    assert combined.meta['chosen_epoch'] == gru_metrics['chosen_epoch']
    assert build_model_from_checkpoint(combined)(torch.rand(1, 10, 3, 112, 112)).shape == (1, 9)


def test_runs_that_do_not_make_a_pose_gru_are_refused(tiny_cache, tmp_path):
    plain = tmp_path / 'plain'
    train.main(['--config', str(ROOT / 'training/configs/fast_convgru2d.yaml'),
                '--data', str(tiny_cache), '--out', str(plain), *SMALL, 'epochs=1'])
    with pytest.raises(pose_gru.PoseGRUError, match='pose_loss_weight'):
        pose_gru.pose_model_from_run(plain)
    with pytest.raises(SystemExit):
        pose_gru.main(['cache', '--pose-run', str(tmp_path / 'missing'), '--out',
                       str(tmp_path / 'x')])


def test_the_pose_gru_exports_to_onnx_with_a_dynamic_batch(tmp_path):
    from pitch_predictor.models.checkpoint import save_checkpoint
    from training.export import export
    model = small_model()
    save_checkpoint(tmp_path / 'model.pt', model, model_name='pose_gru_alexnet',
                    model_config=model.config, preprocess=fast_preprocess(),
                    sampling_method=2)
    # export traces one batch size and checks another (the pseudo-joints are computed
    # inside the graph: nothing in it may be folded to the traced batch).
    report = export(tmp_path / 'model.pt', onnx_path=tmp_path / 'model.onnx', tolerance=1e-4)
    assert report['max_abs_diff_logits'] < 1e-4 and report['finite']
    assert report['batch'] > 1

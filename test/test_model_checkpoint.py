"""Checkpoint files: round trip, and every way a file can be wrong."""

from pitch_predictor.models.checkpoint import (
    build_model_from_checkpoint, CheckpointError, load_checkpoint, save_checkpoint)
from pitch_predictor.models.decision import checkpoint_temperature
from pitch_predictor.models.preprocessing import fast_preprocess
from pitch_predictor.models.registry import build_model, fast_config
import pytest
import torch


def saved_model(path, name='convgru1d_alexnet', **meta):
    torch.manual_seed(0)
    config = fast_config(name)
    model = build_model(name, **config)
    save_checkpoint(path, model, model_name=name, model_config=model.config,
                    preprocess=fast_preprocess(), sampling_method=5, meta=meta or None)
    return model


def rewrite(path, **changes):
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)


def test_round_trip(tmp_path):
    path = tmp_path / 'model.pt'
    model = saved_model(path, epoch=7, accuracy=0.75, history=[(1, 0.5)])
    assert not list(tmp_path.glob('*.tmp'))
    ckpt = load_checkpoint(path)
    assert ckpt.model_name == 'convgru1d_alexnet'
    assert ckpt.model_config == fast_config('convgru1d_alexnet')
    assert ckpt.preprocess == fast_preprocess()
    assert ckpt.sampling_method == 5
    assert ckpt.class_names == [f'block{b}' for b in range(1, 10)]
    assert ckpt.block_grid == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert ckpt.format_version == 1
    assert ckpt.meta == {'epoch': 7, 'accuracy': 0.75, 'history': [[1, 0.5]]}
    loaded = build_model_from_checkpoint(ckpt, 'cpu')
    assert not loaded.training
    clips = torch.randn(1, 3, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(loaded(clips), model.eval()(clips), atol=0, rtol=0)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match='nope.pt: no such file'):
        load_checkpoint(tmp_path / 'nope.pt')


def test_corrupt_and_truncated_files(tmp_path):
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'\x00not a checkpoint at all' * 10)
    with pytest.raises(CheckpointError, match='junk.pt: corrupt'):
        load_checkpoint(junk)
    good = tmp_path / 'good.pt'
    saved_model(good)
    cut = tmp_path / 'cut.pt'
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match='cut.pt'):
        load_checkpoint(cut)


def test_other_torch_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / 'weights.pt'
    torch.save({'state_dict': {}}, path)
    with pytest.raises(CheckpointError, match='not a pitch_predictor.checkpoint'):
        load_checkpoint(path)


def test_version_mismatch(tmp_path):
    path = tmp_path / 'old.pt'
    saved_model(path)
    rewrite(path, format_version=99)
    with pytest.raises(CheckpointError, match='old.pt: format version 99'):
        load_checkpoint(path)


def test_config_mismatch(tmp_path):
    path = tmp_path / 'model.pt'
    saved_model(path)
    config = fast_config('convgru1d_alexnet')
    config['channels'] = [32, 64, 96, 96, 80]
    rewrite(path, model_config=config)
    with pytest.raises(CheckpointError, match='model.pt: weights do not match'):
        build_model_from_checkpoint(load_checkpoint(path))
    rewrite(path, model_config={**config, 'colour': True})
    with pytest.raises(CheckpointError, match='unknown config keys'):
        build_model_from_checkpoint(load_checkpoint(path))
    rewrite(path, model_name='alexnet9000')
    with pytest.raises(CheckpointError, match='cannot build model'):
        build_model_from_checkpoint(load_checkpoint(path))


def test_class_names_mismatch(tmp_path):
    path = tmp_path / 'model.pt'
    saved_model(path)
    rewrite(path, class_names=['left', 'right'])
    with pytest.raises(CheckpointError, match='class names'):
        load_checkpoint(path)


class WouldRunCode:
    """Unpickling this calls ``open(marker, 'w')``: code execution from a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / 'evil.pt'
    marker = tmp_path / 'code_ran'
    saved_model(path)
    payload = torch.load(path, weights_only=True)
    payload['meta'] = {'payload': WouldRunCode(marker)}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match='evil.pt: refused'):
        load_checkpoint(path)
    assert not marker.exists()


def test_meta_must_be_plain_data(tmp_path):
    with pytest.raises(CheckpointError, match='meta.bad'):
        saved_model(tmp_path / 'model.pt', bad=object())
    assert not (tmp_path / 'model.pt').exists()


def test_input_kind_and_temperature_are_recorded(tmp_path):
    path = tmp_path / 'model.pt'
    saved_model(path, temperature=1.7)
    ckpt = load_checkpoint(path)
    assert ckpt.input_kind == 'rgb'
    assert checkpoint_temperature(ckpt.meta) == 1.7
    rewrite(path, input_kind='joints')
    with pytest.raises(CheckpointError, match="recorded input kind 'joints'"):
        build_model_from_checkpoint(load_checkpoint(path))
    payload = torch.load(path, weights_only=True)
    del payload['input_kind']  # files written before the kind was recorded
    torch.save(payload, path)
    assert load_checkpoint(path).input_kind is None
    build_model_from_checkpoint(load_checkpoint(path))


@pytest.mark.parametrize('name', ['two_stream_1d', 'two_stream_2d'])
@pytest.mark.parametrize('mode', ['features', 'late'])
def test_two_stream_round_trip(tmp_path, name, mode):
    torch.manual_seed(0)
    model = build_model(name, **{**fast_config(name), 'fusion_mode': mode,
                                 'late_weight': 0.3}).eval()
    path = tmp_path / 'two.pt'
    save_checkpoint(path, model, model_name=name, model_config=model.config,
                    preprocess=fast_preprocess(), sampling_method=5,
                    meta={'temperature': 1.25})
    ckpt = load_checkpoint(path)
    assert ckpt.input_kind == 'rgb+joints'
    assert ckpt.model_config['fusion_mode'] == mode
    assert ckpt.meta['temperature'] == 1.25
    loaded = build_model_from_checkpoint(ckpt)
    assert loaded.late_weight == 0.3
    clips = torch.randn(1, 3, 3, 112, 112)
    joints = torch.randn(1, 3, 25, 3) + torch.tensor([0.0, 0.0, 2.5])
    joints[0, 1] = float('nan')
    with torch.no_grad():
        torch.testing.assert_close(loaded(clips, joints), model(clips, joints), atol=0, rtol=0)


def test_skeleton_gru_checkpoint_without_features_key_keeps_old_inputs(tmp_path):
    # A file from before the 'features' key: its full config lacks it; it must build the
    # original peer (joints minus the first frame's SpineBase, camera axes, NaN as 0).
    torch.manual_seed(0)
    old_config = {'hidden': 16, 'layers': 2, 'dropout': 0.2, 'num_classes': 9}
    model = build_model('skeleton_gru', **old_config).eval()
    path = tmp_path / 'skeleton.pt'
    save_checkpoint(path, model, model_name='skeleton_gru', model_config=old_config,
                    preprocess=fast_preprocess(), sampling_method=5)
    payload = torch.load(path, weights_only=True)
    del payload['input_kind']
    torch.save(payload, path)
    loaded = build_model_from_checkpoint(load_checkpoint(path))
    assert loaded.config['features'] == 'spinebase'
    joints = torch.randn(2, 6, 25, 3)
    joints[0, 2, 3] = float('nan')
    clean = torch.nan_to_num(joints)
    inputs = (clean - clean[:, :1, :1]).flatten(2)  # SpineBase is joint 0
    with torch.no_grad():
        outputs, _ = loaded.gru(inputs)
        torch.testing.assert_close(loaded(joints), loaded.output(outputs[:, -1]))

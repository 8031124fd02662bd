"""Node parameters without ROS: specs, the documented YAML file, overrides, validation."""

import re

from pitch_predictor.runtime import node_params
from pitch_predictor.runtime.node_params import (
    ALL_PARAMETERS, check_value, default_params_file, load_node_settings, ParameterError,
    read_params_file)
from pitch_predictor.start_detector import StartDetectorConfig
import pytest
import yaml


def test_every_parameter_is_documented_in_the_yaml_file():
    path = default_params_file()
    assert path is not None and path.name == 'predictor.yaml'
    text = path.read_text()
    lines = text.splitlines()
    for spec in ALL_PARAMETERS:
        leaf = spec.name.split('.')[-1]
        # Active or commented-out (detector defaults live in start_detector.py).
        found = [i for i, line in enumerate(lines)
                 if re.match(rf'\s*(#\s*)?{re.escape(leaf)}:', line)]
        assert found, f'{spec.name} is not in {path}'
        assert lines[found[0] - 1].strip().startswith('#'), f'{spec.name} has no comment'
        assert spec.description and spec.description.endswith(('.', ')'))


def test_yaml_values_are_the_defaults_and_valid():
    values = read_params_file(default_params_file())
    assert values, 'no ros__parameters found'
    for name, value in values.items():
        assert check_value(name, value) == node_params.SPECS[name].default, name


def test_detector_parameters_follow_the_detector_defaults():
    defaults = StartDetectorConfig()
    settings = load_node_settings(None)
    assert settings.core.detector == defaults
    changed = load_node_settings(None, ['detector.delta_image:=4.5'])
    assert changed.core.detector.delta_image == 4.5


def test_overrides_and_file_layering(tmp_path):
    params = tmp_path / 'p.yaml'
    params.write_text(yaml.safe_dump({
        '/**': {'ros__parameters': {'sampling_method': 3, 'use_sim_time': True}},
        'pitch_predictor': {'ros__parameters': {'detector': {'rest_frames': 12}}},
    }))
    settings = load_node_settings(params, ['pair_tolerance_ms:=4', 'image_transport:=compressed'])
    assert settings.core.sampling_method == 3
    assert settings.core.detector.rest_frames == 12
    assert settings.core.pair_tolerance_s == pytest.approx(0.004)
    assert settings.compressed and settings.image_topic == '/kinect2/qhd/image_color/compressed'
    assert settings.skeleton_topic == '/body_tracking/skeleton'


@pytest.mark.parametrize('name,value', [
    ('sampling_method', 8), ('sampling_method', 1.5), ('pair_tolerance_ms', -1.0),
    ('device', 'tpu'), ('device', 'cuda:x'), ('skeleton_type', 'joints'),
    ('early_estimates', 'yes'), ('qos_depth', 0), ('no_such_parameter', 1),
    ('pitcher_row_offset_top', float('nan')), ('pitcher_row_offset_bottom', -20.5),
    ('pitcher_row_offset_top', 'high'),
])
def test_bad_values_are_refused(name, value):
    with pytest.raises(ParameterError):
        check_value(name, value)


def test_good_values_pass():
    assert check_value('device', 'cuda:1') == 'cuda:1'
    assert check_value('pair_tolerance_ms', 5) == 5.0  # int accepted for a float
    assert check_value('pitcher_row_offset_bottom', -2) == -2.0


def test_the_row_offset_parameters_reach_the_core():
    from pitch_predictor.runtime.node_params import core_config_from
    config = core_config_from({'pitcher_row_offset_top': 1.25,
                               'pitcher_row_offset_bottom': -0.5})
    assert (config.row_offset_top, config.row_offset_bottom) == (1.25, -0.5)
    defaults = core_config_from({})
    assert (defaults.row_offset_top, defaults.row_offset_bottom) == (0.0, 0.0)


def test_broken_params_file_names_the_file(tmp_path):
    bad = tmp_path / 'broken.yaml'
    bad.write_text('/**:\n  ros__parameters: [1, 2\n')
    with pytest.raises(ParameterError, match='broken.yaml'):
        read_params_file(bad)

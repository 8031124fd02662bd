"""Start-up refusals: bad parameters and bad model files end the node with a clear error."""

from pathlib import Path
import subprocess

from node_harness import node_command, require_module, ROOT
import pytest

rclpy = require_module('rclpy')

pytestmark = [pytest.mark.ros]

EXIT_BAD_PARAMETER = 2
EXIT_MODEL_ERROR = 3


def _run(ros_args, timeout_s=60.0):
    proc = subprocess.run(node_command(ros_args), capture_output=True, text=True,
                          timeout=timeout_s, cwd=ROOT)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize('override,named', [
    ('sampling_method:=9', 'sampling_method'),
    ('pair_tolerance_ms:=-1.0', 'pair_tolerance_ms'),
    ('device:=gpu', 'device'),
    ('qos_reliability:=sometimes', 'qos_reliability'),
    ('qos_depth:=ten', 'qos_depth'),
    ('detector.rest_frames:=0', 'detector.rest_frames'),
])
def test_bad_parameter_is_refused_before_loading_anything(override, named):
    code, output = _run(['-p', override])
    assert code == EXIT_BAD_PARAMETER, output
    assert named in output and 'Traceback' not in output


def test_bad_parameter_in_a_params_file(tmp_path):
    params = tmp_path / 'bad.yaml'
    params.write_text('/**:\n  ros__parameters:\n    early_every_frames: 400\n')
    code, output = _run(['--params-file', str(params)])
    assert code == EXIT_BAD_PARAMETER and 'early_every_frames' in output, output


@pytest.mark.parametrize('content,says', [
    (None, 'no such file'),
    (b'not a checkpoint at all', 'corrupt'),
])
def test_missing_or_corrupt_model_exits_non_zero(tmp_path, content, says):
    model = tmp_path / 'model.pt'
    if content is not None:
        model.write_bytes(content)
    code, output = _run(['-p', f'model_path:={model}', '-p', 'device:=cpu'])
    assert code == EXIT_MODEL_ERROR, output
    assert says in output and str(model) in output and 'Traceback' not in output


def test_cuda_requested_without_cuda_is_a_clear_error(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    model = Path(tmp_path) / 'missing.pt'
    code, output = _run(['-p', f'model_path:={model}', '-p', 'device:=cuda'])
    assert code == EXIT_MODEL_ERROR and 'CUDA' in output, output

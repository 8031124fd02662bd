"""A real colcon build of the package in a scratch workspace, and the installed tree."""

import os
from pathlib import Path
import shutil
import subprocess
import sys

from node_harness import require_tool
import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SKIP = shutil.ignore_patterns('.venv', '.git', 'data', 'runs', 'build', 'install', 'log',
                              '__pycache__', '*.egg-info', '.pytest_cache', '.ruff_cache')


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """colcon-build a copy of the package; return its install prefix."""
    require_tool('colcon', str(VENV_BIN))
    ws = tmp_path_factory.mktemp('ws')
    shutil.copytree(ROOT, ws / 'src' / 'pitch_predictor', ignore=SKIP)
    env = dict(os.environ, PATH=f'{VENV_BIN}{os.pathsep}{os.environ["PATH"]}')
    proc = subprocess.run(['colcon', 'build', '--event-handlers', 'console_direct-'],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ws / 'install' / 'pitch_predictor'


def installed_env(prefix: Path) -> dict:
    """Environment that makes the installed tree (not the source tree) importable."""
    site = next(prefix.glob('lib/python3*/site-packages'))
    return dict(os.environ, PYTHONPATH=str(site),
                AMENT_PREFIX_PATH=str(prefix), PYTHONDONTWRITEBYTECODE='1')


def test_installed_tree_layout(installed):
    share = installed / 'share' / 'pitch_predictor'
    assert (installed / 'share/ament_index/resource_index/packages/pitch_predictor').is_file()
    assert (share / 'package.xml').read_text() == (ROOT / 'package.xml').read_text()
    assert (share / 'launch' / 'predictor.launch.py').is_file()
    assert (share / 'config' / 'predictor.yaml').is_file()
    for exe in ('predictor_node', 'pitch-sim', 'pitch-eval'):
        assert os.access(installed / 'lib' / 'pitch_predictor' / exe, os.X_OK), exe


def test_installed_package_is_the_one_imported(installed, tmp_path):
    # cwd elsewhere: `python -c` would otherwise import the source tree from cwd.
    out = subprocess.run(
        [sys.executable, '-c', 'import pitch_predictor, sys; print(pitch_predictor.__file__)'],
        env=installed_env(installed), capture_output=True, text=True, check=True,
        cwd=tmp_path).stdout
    assert Path(out.strip()).is_relative_to(installed)


def test_ament_index_finds_share_directory(installed, tmp_path):
    code = ('from ament_index_python.packages import get_package_share_directory as g; '
            'print(g("pitch_predictor"))')
    out = subprocess.run([sys.executable, '-c', code], env=installed_env(installed),
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert Path(out.strip()) == installed / 'share' / 'pitch_predictor'


@pytest.mark.ros
def test_installed_node_refuses_missing_model_clearly(installed, tmp_path):
    missing = tmp_path / 'no_such_model.pt'
    proc = subprocess.run(
        [str(installed / 'lib' / 'pitch_predictor' / 'predictor_node'),
         '--ros-args', '-p', f'model_path:={missing}'],
        env=installed_env(installed), capture_output=True, text=True, timeout=120,
        cwd=tmp_path)
    assert proc.returncode != 0
    assert 'no_such_model.pt' in proc.stdout + proc.stderr

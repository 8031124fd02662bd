"""
The launch file, read statically (``ros2 launch`` is not available here), then obeyed.

The test reads ``launch/predictor.launch.py`` with ``ast``: package, executable, node
name, parameter file and remappings must match ``setup.py``, ``config/`` and the topics
the node really subscribes to. Then it starts the node with the arguments launch_ros
would pass (``--ros-args -r __node:= -r __ns:= --params-file ... -r from:=to``) and
checks the remapped and namespaced topics over DDS.
"""

import ast
from pathlib import Path
import shutil
import signal
import sys

from node_harness import NodeProcess, require_module, ROOT, TestPeer
from pitch_predictor.runtime import node_params
import pytest
from runtime_fixtures import make_checkpoint

LAUNCH_FILE = ROOT / 'launch' / 'predictor.launch.py'


def _constants(path: Path) -> dict:
    """Module-level NAME = literal assignments of a Python file, without running it."""
    out = {}
    for stmt in ast.parse(path.read_text()).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 \
                and isinstance(stmt.targets[0], ast.Name):
            try:
                out[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            except ValueError:
                continue
    return out


def _node_call(path: Path) -> ast.Call:
    calls = [n for n in ast.walk(ast.parse(path.read_text()))
             if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'Node']
    assert len(calls) == 1, 'the launch file should start exactly one Node'
    return calls[0]


@pytest.fixture(scope='module')
def launch():
    """Return the launch file's constants and its Node(...) keywords (as source)."""
    constants = _constants(LAUNCH_FILE)
    keywords = {k.arg: ast.unparse(k.value) for k in _node_call(LAUNCH_FILE).keywords}
    return constants, keywords


def test_launch_file_imports_launch_only_inside_the_function():
    tree = ast.parse(LAUNCH_FILE.read_text())
    top_imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert top_imports == []
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions == ['generate_launch_description']


def test_launch_file_matches_setup_and_config(launch):
    constants, keywords = launch
    setup = _constants(ROOT / 'setup.py')
    setup_text = (ROOT / 'setup.py').read_text()
    assert constants['PACKAGE'] == setup['PACKAGE'] == 'pitch_predictor'
    assert f"'{constants['EXECUTABLE']} = pitch_predictor.predictor_node:main'" in setup_text
    assert keywords['package'] == 'PACKAGE' and keywords['executable'] == 'EXECUTABLE'
    assert keywords['name'] == 'NODE_NAME'
    assert constants['NODE_NAME'] == node_params.NODE_NAME
    # The params file the launch file points at is installed by setup.py from config/.
    params = ROOT / constants['PARAMS_SUBDIR'] / constants['PARAMS_FILE']
    assert params.is_file()
    assert "glob('config/*.yaml')" in setup_text and "os.path.join(SHARE, 'config')" in \
        setup_text
    assert "LaunchConfiguration('params_file')" in keywords['parameters']
    # Every remapping's source is a topic the node subscribes to.
    sources = {topic for _, topic, _, _ in constants['TOPIC_ARGUMENTS']}
    assert sources == {node_params.IMAGE_TOPIC,
                       node_params.IMAGE_TOPIC + node_params.COMPRESSED_SUFFIX,
                       node_params.SKELETON_TOPIC}
    assert 'TOPIC_ARGUMENTS' in keywords['remappings']
    assert "LaunchConfiguration('namespace')" in keywords['namespace']


def _launch_ros_args(constants: dict, tmp_path: Path, namespace: str,
                     targets: dict) -> list:
    """Return what launch_ros's Node action puts after the executable."""
    sim_time = tmp_path / 'launch_params.yaml'  # launch_ros writes dict params to a file
    sim_time.write_text('/**:\n  ros__parameters:\n    use_sim_time: false\n')
    args = ['--ros-args', '-r', f'__node:={constants["NODE_NAME"]}',
            '-r', f'__ns:={namespace}',
            '--params-file', str(ROOT / constants['PARAMS_SUBDIR'] / constants['PARAMS_FILE']),
            '--params-file', str(sim_time)]
    for argument, topic, default, _ in constants['TOPIC_ARGUMENTS']:
        args += ['-r', f'{topic}:={targets.get(argument, default)}']
    return args


@pytest.mark.ros
@pytest.mark.slow
def test_node_runs_with_the_launch_arguments(launch, tmp_path):
    require_module('rclpy')
    constants, _ = launch
    executable = shutil.which(constants['EXECUTABLE'],
                              path=str(Path(sys.executable).parent))
    assert executable, 'the console script is installed with the package'
    args = _launch_ros_args(constants, tmp_path, '/robot1',
                            {'image_topic': '/cam/image', 'skeleton_topic': '/cam/body'})
    # The shipped model may not be trained in a development tree: a tiny one stands in.
    model = make_checkpoint(tmp_path / 'tiny.pt', 'convgru2d_alexnet')
    args += ['-p', f'model_path:={model}']
    peer = TestPeer(image_topic='/cam/image', skeleton_topic='/cam/body')
    node = NodeProcess([executable, *args], tmp_path / 'node.log')
    try:
        ok = peer.spin_until(
            lambda: peer.image_pub.get_subscription_count() > 0
            and peer.skeleton_pub.get_subscription_count() > 0
            and peer.node.count_publishers('/robot1/pitch/predicted_block') > 0
            and peer.node.count_publishers('/robot1/pitch/prediction_header') > 0
            # Publishers are discovered before __init__ logs 'ready': wait for the line
            # too, or SIGINT can land while the node is still starting.
            and 'ready' in node.log(),
            60, node)
        assert ok, node.log()
        assert peer.node.count_publishers('/pitch/predicted_block') == 0
        assert node.stop(signal.SIGINT) == 0, node.log()
    finally:
        node.stop(signal.SIGKILL)
        peer.close()
    assert 'ready' in node.log() and 'Traceback' not in node.log()

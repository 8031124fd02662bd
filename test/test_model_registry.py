"""The model registry is complete on its own; no module of the package is in an import cycle."""

import ast
from pathlib import Path
import subprocess
import sys

PACKAGE = Path(__file__).resolve().parent.parent / 'pitch_predictor'

EXPECTED_MODELS = sorted([
    'convgru1d_alexnet', 'convgru2d_alexnet', 'convgru2d2_alexnet', 'gru_alexnet',
    'r3d_18', 'mc3_18', 'r2plus1d_18', 'skeleton_gru', 'two_stream_1d', 'two_stream_2d',
    'pose_gru_alexnet'])


def package_modules():
    """Return every module name of pitch_predictor, from the files (nothing imported)."""
    names = []
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
        names.append('.'.join(parts[:-1] if parts[-1] == '__init__' else parts))
    return names


def run(code):
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=PACKAGE.parent)


def imported_package_modules(module, path, known):
    """Return the pitch_predictor modules that ``path`` imports anywhere (lazily included)."""
    tree = ast.parse(path.read_text())
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')
                anchor = anchor[:len(anchor) - node.level + 1]
                base = '.'.join(anchor + ([base] if base else []))
            targets = [f'{base}.{alias.name}' for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            # ``from a import b``: b is a module or a name in a; take the longest module.
            while target and target not in known:
                target = target.rpartition('.')[0]
            if target and target != module and target.startswith('pitch_predictor.'):
                found.add(target)
    return found


def test_package_modules_form_no_import_cycle():
    modules = package_modules()
    known = set(modules)
    graph = {}
    for name in modules:
        parts = name.split('.')
        path = PACKAGE.parent.joinpath(*parts)
        path = path / '__init__.py' if path.is_dir() else path.with_suffix('.py')
        # A package's __init__ runs before its modules: importing it is not an edge back.
        graph[name] = {t for t in imported_package_modules(name, path, known)
                       if not name.startswith(t + '.')}
    cycles = []
    state = {}

    def visit(node, stack):
        state[node] = 'open'
        for target in sorted(graph[node]):
            if state.get(target) == 'open':
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[node] = 'done'

    for name in modules:
        if name not in state:
            visit(name, [name])
    assert cycles == []
    # The model library's three model modules: peers and two_stream build on networks.
    assert 'pitch_predictor.models.registry' not in set().union(
        *(graph[f'pitch_predictor.models.{m}'] for m in ('networks', 'peers', 'two_stream')))
    assert graph['pitch_predictor.models.networks'].isdisjoint(
        {'pitch_predictor.models.peers', 'pitch_predictor.models.two_stream'})


def test_every_module_imports_in_a_fresh_interpreter():
    modules = package_modules()
    assert 'pitch_predictor.models.registry' in modules and len(modules) > 40
    code = ''.join(f'import {name}\n' for name in modules)
    result = run(code)
    assert result.returncode == 0, result.stderr


def test_the_registry_lists_every_model_imported_first_and_alone():
    code = ('import sys\n'
            'from pitch_predictor.models import registry\n'
            'print(registry.list_models())\n'
            'print(sorted({spec.builder.__module__ for spec in registry.MODELS.values()}))\n')
    result = run(code)
    assert result.returncode == 0, result.stderr
    names, modules = result.stdout.strip().splitlines()
    assert names == repr(EXPECTED_MODELS)
    assert modules == repr(['pitch_predictor.models.networks', 'pitch_predictor.models.peers',
                            'pitch_predictor.models.pose_gru',
                            'pitch_predictor.models.two_stream'])


def test_model_modules_register_nothing_on_import():
    # The registry is one table: importing the model modules defines builders only.
    code = ('import sys\n'
            'from pitch_predictor.models import networks, peers, two_stream\n'
            "print('pitch_predictor.models.registry' in sys.modules)\n")
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'False'

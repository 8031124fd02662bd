"""The node-decision bench names shipped files and compares the default with each model."""

import importlib
from pathlib import Path
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / 'bench'):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))  # the bench runs from the repo root

bench = importlib.import_module('node_decision')  # bench/ is not a package


def test_the_bench_runs_at_the_nodes_defaults_and_names_shipped_files(tmp_path):
    from pitch_predictor.runtime.node_params import defaults
    assert defaults()['inference_backend'] == bench.NODE_BACKEND
    assert defaults()['torch_threads'] == bench.NODE_TORCH_THREADS
    (label, path), = bench.models(['convgru2d_fast.pt'], tmp_path)
    assert label == 'shipped convgru2d_fast.pt' and path.is_file()
    with pytest.raises(SystemExit, match='not a shipped model file'):
        bench.models(['absent.pt'], tmp_path)


def test_the_default_is_compared_with_every_other_model_at_the_nodes_backend(capsys):
    summary = {  # (label, backend) -> (rounds' final p95, rounds' mean ingest), ms
        ('default model (x.pt)', 'onnxruntime'): ([2.0, 2.2, 2.4], [0.6, 0.7, 0.8]),
        ('default model (x.pt)', 'eager'): ([4.0, 4.0, 4.0], [0.7, 0.7, 0.7]),
        ('shipped rgb.pt', 'onnxruntime'): ([7.0, 7.0, 7.0], [2.2, 2.2, 2.2]),
        ('shipped rgb.pt', 'eager'): ([9.0, 9.0, 9.0], [3.0, 3.0, 3.0]),
        ('near', 'onnxruntime'): ([2.1, 2.2, 2.3], [0.7, 0.7, 0.7]),
    }
    bench.compare_with_default(summary)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # two models x (p95, ingest); eager rows are not compared
    assert 'final decision p95, default / shipped rgb.pt (onnxruntime) = 0.31x' in lines[0]
    assert 'ingest mean per frame, default / shipped rgb.pt (onnxruntime) = 0.32x' in lines[1]
    assert "within the rounds' spread: noise" in lines[2]  # 2.2 against 2.2 ms

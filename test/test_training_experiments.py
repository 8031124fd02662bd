"""
The experiment runner on a tiny generated set: tables, repeats, resume, the evaluations.

Every run is a real ``training.train`` subprocess on the tiny cache of ``conftest.py``
(1 participant x 9 blocks x 4 trials) with a narrow network, one or two epochs; the
assertions are about what the runner writes.
"""

import csv
import json
from pathlib import Path
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training import experiments  # noqa: E402

NARROW = ['epochs=1', 'num_workers=0', 'eval_every=0', 'threads=1',
          'model_config.channels=[8,16,16,16,16]', 'model_config.fc_sizes=[32,32]']


def read_table(path: Path) -> dict:
    with path.open() as f:
        return {row['row']: row for row in csv.DictReader(f)}


@pytest.mark.slow
def test_grid_repeats_tabulates_and_resumes(tiny_cache, tmp_path, capsys):
    args = ['peers', '--data', str(tiny_cache), '--out', str(tmp_path), '--repeats', '2',
            '--rows', 'skeleton_gru', 'epochs=2', 'num_workers=0', 'threads=1']
    experiments.main(args)
    root = tmp_path / 'fast'
    table = read_table(root / 'peers.csv')
    line = table['skeleton_gru-s2']
    # Two seeds: mean and sample sd of the two runs' accuracies, in percent.
    accs = [100 * json.loads((root / 'skeleton_gru-s2' / f'seed{k}' / 'metrics.json')
                             .read_text())['test']['accuracy'] for k in (0, 1)]
    assert line['runs'] == '2'
    assert float(line['ours acc %']) == pytest.approx(sum(accs) / 2, abs=0.006)
    row_acc, col_acc = (float(v) for v in line['grid row / column acc %'].split(' / '))
    assert 0.0 <= row_acc <= 100.0 and 0.0 <= col_acc <= 100.0
    assert row_acc >= float(line['ours acc %']) - 0.06  # a right block has a right row
    # Rows that were not selected are listed, empty; the markdown holds the same rows.
    assert table['r3d_18-s2']['ours acc %'] == 'not run'
    assert table['convgru2d-s2-mean_flat']['paper acc %'] == '77.78'
    assert 'skeleton_gru-s2' in (root / 'peers.md').read_text()
    # Running the same command again trains nothing: finished runs are skipped.
    capsys.readouterr()
    experiments.main(args)
    assert 'runs trained now: 0' in capsys.readouterr().out


@pytest.mark.slow
def test_anticipation_and_robustness_write_their_tables(tiny_cache, tmp_path):
    common = ['--data', str(tiny_cache), '--out', str(tmp_path), '--repeats', '1']
    experiments.main(['anticipation', *common, *NARROW])
    out = tmp_path / 'fast' / 'anticipation'
    with (out / 'anticipation.csv').open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r['step']) for r in rows] == list(range(1, 11))  # sampling 2: 10 frames
    fractions = [float(r['fraction_seen']) for r in rows]
    assert fractions == sorted(fractions) and fractions[0] > 0.0 and fractions[-1] <= 1.0
    assert all(0.0 <= float(r['accuracy']) <= 1.0 for r in rows)
    assert (out / 'anticipation.png').stat().st_size > 0

    experiments.main(['robustness', *common, '--rows', 'convgru2d-s2', *NARROW])
    out = tmp_path / 'fast' / 'robustness'
    with (out / 'robustness.csv').open() as f:
        rows = list(csv.DictReader(f))
    tests = {(r['test'], int(r['level'])) for r in rows}
    assert ('clean', 0) in tests
    assert {lv for t, lv in tests if t == 'frame_rate'} == set(experiments.FRAME_RATE_EXTRA)
    assert {lv for t, lv in tests if t == 'missing'} == set(experiments.MISSING_COUNTS)
    assert {lv for t, lv in tests if t == 'shift'} == set(experiments.SHIFT_PIXELS)
    # Three repetitions of every perturbed level.
    assert sum(1 for r in rows if r['test'] == 'shift' and r['level'] == '4') == 3
    for name in ('frame_rate', 'missing', 'shift'):
        assert (out / f'robustness_{name}.png').stat().st_size > 0

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


def test_robustness_rows_are_the_papers_last_flat_on_sampling_1_2_5():
    rows = experiments.ROBUSTNESS_ROWS
    assert [r.row_id for r in rows] == ['convgru2d-s1-last_flat', 'convgru2d-s2-last_flat',
                                        'convgru2d-s5-last_flat']
    assert [r.overrides() for r in rows] == [
        [f'sampling={s}', 'model_config.fusion=last_flat'] for s in (1, 2, 5)]
    assert {r.config for r in rows} == {'convgru2d'} and not any(r.pretrain for r in rows)
    # The same rows as Table III's, with the paper's accuracies.
    assert [r.paper_acc for r in rows] == [79.17, 77.31, 77.78]
    assert all(r in experiments.TABLE3 for r in rows)
    assert [f'{r.label} sampling {r.setting()}' for r in rows] == [
        f'2D-ConvGRU sampling {s} + last_flat' for s in (1, 2, 5)]


def test_pretraining_rows_build_torchvision_widths():
    from pitch_predictor.models.networks import TORCHVISION_ALEXNET_CHANNELS
    assert experiments.pretrain_channels() == TORCHVISION_ALEXNET_CHANNELS
    assert experiments.PRETRAIN_LABEL.endswith(
        '/'.join(map(str, TORCHVISION_ALEXNET_CHANNELS)))
    rows = [r for r in experiments.TABLE3 if r.pretrain]
    assert [r.row_id for r in rows] == [f'convgru2d-s{s}-last_flat-pretrain'
                                        for s in (1, 2, 3, 4, 5)]
    for row in rows:
        assert row.overrides() == [f'sampling={row.sampling}', 'model_config.fusion=last_flat',
                                   'model_config.channels=[64,192,384,256,256]']
        assert row.label == '2D-ConvGRU (torchvision AlexNet widths 64/192/384/256/256)'
    # The from-scratch rows keep their config's widths.
    assert not any('channels' in item for r in experiments.TABLE3 if not r.pretrain
                   for item in r.overrides())


def test_a_pretrained_file_of_another_layout_stops_the_runner(tmp_path,
                                                              torchvision_alexnet_file):
    import torch
    state = torch.load(torchvision_alexnet_file, weights_only=True)
    experiments.check_pretrained(str(torchvision_alexnet_file))  # torchvision's: accepted
    features = {k: v for k, v in state.items() if k.startswith('features.')}  # 10 of 234 MB
    narrow = {k: v[:32] if k == 'features.0.weight' else v for k, v in features.items()}
    kernel = {k: torch.zeros(64, 3, 7, 7) if k == 'features.0.weight' else v
              for k, v in features.items()}
    cases = {'narrow.pt': (narrow, "torchvision's AlexNet layout"),
             'kernel.pt': (kernel, "torchvision's AlexNet layout"),
             'module.pt': (torch.nn.Linear(2, 2), 'not a plain state dict'),
             'other.pt': ({'conv1.weight': torch.zeros(64, 3, 7, 7)}, 'no AlexNet conv')}
    for name, (content, message) in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(SystemExit, match=message):
            experiments.main(['table3', '--pretrained', str(tmp_path / name), '--dry-run',
                              '--out', str(tmp_path / 'out')])
    assert not (tmp_path / 'out').exists()  # stopped before any table or run


@pytest.mark.slow
def test_a_pretraining_row_trains_from_a_torchvision_file(tiny_cache, tmp_path,
                                                          torchvision_alexnet_file):
    import torch
    from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
    row_id = 'convgru2d-s2-last_flat-pretrain'
    # One optimizer step (9 training trials, batch 16) at lr 0: the weights stay the
    # file's, so the checkpoint shows what was loaded.
    experiments.main(['table3', '--rows', row_id, '--pretrained', str(torchvision_alexnet_file),
                      '--data', str(tiny_cache), '--out', str(tmp_path), '--repeats', '1',
                      'epochs=1', 'batch_size=16', 'lr=0', 'num_workers=0', 'eval_every=0',
                      'eval_train=false', 'threads=1', 'model_config.fc_sizes=[32,32]'])
    run = tmp_path / 'fast' / row_id / 'seed0'
    metrics = json.loads((run / 'metrics.json').read_text())
    assert metrics['model_config']['channels'] == [64, 192, 384, 256, 256]
    assert metrics['epochs_run'] == 1 and len(metrics['history']) == 1
    ckpt = load_checkpoint(run / 'model.pt')
    model = build_model_from_checkpoint(ckpt, torch.device('cpu'))
    state = torch.load(torchvision_alexnet_file, weights_only=True)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4  # conv1-3 and the layer-6 conv; layer 7 is the ConvGRU
    for conv, layer in zip(convs, (0, 3, 6, 8)):
        assert torch.equal(conv.weight, state[f'features.{layer}.weight'])
    line = read_table(tmp_path / 'fast' / 'table3.csv')[row_id]
    assert line['runs'] == '1' and 'torchvision AlexNet widths' in line['model']
    assert 'widths 64/192/384/256/256' in (tmp_path / 'fast' / 'table3.md').read_text()

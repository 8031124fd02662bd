"""``pitch-eval --mode offline`` end to end on a recording with an off-target throw."""

import csv
import json

from pitch_predictor.data.bag import write_recording
from pitch_predictor.evaluation import cli
from runtime_fixtures import make_checkpoint, synthetic_trial


def _trial(trial_id, block, intended, seed):
    frames, joints = synthetic_trial(width=480, height=270, seed=seed)
    return {'trial_id': trial_id, 'block': block, 'intended_block': intended,
            'participant': 'P1', 'joints': joints, 'frames': frames, 'true_start': 30}


def test_offline_summary_scores_against_the_block_hit_and_the_intended_block(
        tmp_path, capsys):
    # t1 was aimed at block 5 and hit block 4.
    bag = tmp_path / 'aimed.mcap'
    write_recording(bag, [_trial('t0', 3, 3, 0), _trial('t1', 4, 5, 1)], seed=7)
    model = make_checkpoint(tmp_path / 'rgb.pt', 'convgru2d_alexnet')
    out = tmp_path / 'eval'
    code = cli.main([str(bag), '--mode', 'offline', '--model', str(model), '--out', str(out),
                     '--param', 'device:=cpu', '--no-progress'])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert 'off-target throws (intended block != block hit): 1 of 2' in printed

    with (out / 'per_action.csv').open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r['true_block'], r['intended_block']) for r in rows] == [('3', '3'), ('4', '5')]
    # Count both ways from the per-action rows, independently of the scorer's summary.
    hit = sum(r['predicted_block'] == r['true_block'] for r in rows)
    aimed = sum(r['predicted_block'] == r['intended_block'] for r in rows)
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['intended']['trials'] == 2 and summary['intended']['off_target'] == 1
    assert summary['intended']['correct_actual'] == hit == summary['correct']
    assert summary['intended']['correct_intended'] == aimed
    assert f'against the block hit {hit / 2:.3f} ({hit}/2), against the intended block ' \
        f'{aimed / 2:.3f} ({aimed}/2)' in printed

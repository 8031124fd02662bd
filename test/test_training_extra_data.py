"""
Extra training pitchers (``extra_train_data``): they join the training split only.

A second tiny simulated set (other pitchers, another seed) is added to the training
trials of the tiny set; validation and test must stay exactly the main set's split, and
the epoch must draw every selected extra trial once.
"""

import json
from pathlib import Path
import sys

import numpy as np
from pitch_predictor.data.cache import TrialCache
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training import train  # noqa: E402
from training.config import ConfigError  # noqa: E402
from training.splits import make_split  # noqa: E402

JOINTS = ['model=skeleton_gru', 'model_preset=fast', 'sampling=2', 'batch_size=8',
          'num_workers=0', 'seed=3', 'epochs=1', 'eval_train=false']


@pytest.fixture(scope='module')
def extra_cache(tmp_path_factory) -> Path:
    """Two other pitchers (simulator seed 5), 2 trials per block: 36 trials."""
    from pitch_predictor.data.cache import build_cache
    from pitch_predictor.models.preprocessing import fast_preprocess
    from pitch_predictor.sim.generator import planned_trials, small_config
    out = tmp_path_factory.mktemp('extra_cache')
    cfg = small_config(participants=2, trials_per_block=2, seed=5, width=213, height=120)
    build_cache(planned_trials(cfg), out, fast_preprocess(), workers=1, progress=False)
    return out


def test_extra_pitchers_join_training_only(tiny_cache, extra_cache, tmp_path):
    extra = TrialCache(extra_cache)
    assert len(extra.participant_names) == 2 and len(extra) == 36
    base = train.main(['--data', str(tiny_cache), '--out', str(tmp_path / 'base'), *JOINTS])
    both = train.main(['--data', str(tiny_cache), '--out', str(tmp_path / 'both'), *JOINTS,
                       f'extra_train_data={extra_cache}'])
    one = train.main(['--data', str(tiny_cache), '--out', str(tmp_path / 'one'), *JOINTS,
                      f'extra_train_data={extra_cache}', 'extra_train_pitchers=1'])
    split = make_split(TrialCache(tiny_cache), 'paper', 1, 0)
    for result in (base, both, one):
        assert result['num_train'] == len(split.train)
        assert result['num_validation'] == len(split.validation)
        assert result['num_test'] == len(split.test)
    assert base['num_extra_train'] == 0
    assert both['num_extra_train'] == 36
    assert one['num_extra_train'] == int((np.asarray(extra.participants) == 0).sum()) == 18
    saved = json.loads((tmp_path / 'both' / 'metrics.json').read_text())
    assert saved['extra_train_data'] == str(extra_cache)
    # Two caches (here the same one twice): every trial of both; the pitcher limit runs
    # over the caches in order (2 of the first, 1 of the second).
    twice = f'extra_train_data={extra_cache},{extra_cache}'
    two = train.main(['--data', str(tiny_cache), '--out', str(tmp_path / 'two'), *JOINTS,
                      twice])
    three = train.main(['--data', str(tiny_cache), '--out', str(tmp_path / 'three'),
                        *JOINTS, twice, 'extra_train_pitchers=3'])
    assert two['num_extra_train'] == 72
    assert three['num_extra_train'] == 36 + 18


def test_training_set_draws_every_trial_of_each_part(tiny_cache, extra_cache):
    from training.dataset import ClipDataset
    parts = [ClipDataset(str(tiny_cache), np.arange(4), 2, kind='joints'),
             ClipDataset(str(extra_cache), np.arange(6), 2, kind='joints')]
    data = train.TrainingSet(parts)
    assert len(data) == 10
    data.set_epoch(3)
    assert [p.epoch for p in parts] == [3, 3]
    labels = [int(data[i][1]) for i in range(len(data))]
    expected = ([int(x) for x in np.asarray(TrialCache(tiny_cache).labels)[:4]]
                + [int(x) for x in np.asarray(TrialCache(extra_cache).labels)[:6]])
    assert labels == expected


def test_missing_extra_cache_is_a_clear_error(tiny_cache, tmp_path):
    missing = tmp_path / 'nothing_here'
    with pytest.raises(ConfigError, match='nothing_here.*pitch-sim cache --generate'):
        train.main(['--data', str(tiny_cache), '--out', str(tmp_path / 'run'), *JOINTS,
                    f'extra_train_data={missing}'])


def test_pitcher_scaling_report_is_the_mean_and_sd_over_seeds(tmp_path):
    from training.pitcher_scaling import write_report
    rows = [{'pitchers': n, 'seed': s, 'train': 0.9, 'validation': 0.8, 'judge': j,
             'judge_row': j, 'judge_ece': 0.1, 'judge_trials': 162, 'train_seconds': 1.0}
            for n, s, j in ((0, 0, 0.80), (0, 1, 0.84), (24, 0, 0.90), (24, 1, 0.90))]
    write_report(rows, tmp_path)
    table = (tmp_path / 'scaling.md').read_text().splitlines()
    assert table[2] == '| 0 | 6 | 90.0 ± 0.0 | 80.0 ± 0.0 | 82.0 ± 2.8 | 82.0 ± 2.8 | 0.100 | 2 |'
    assert table[3].startswith('| 24 | 30 | 90.0 ± 0.0 | 80.0 ± 0.0 | 90.0 ± 0.0 |')
    assert (tmp_path / 'scaling.png').stat().st_size > 0
    assert len((tmp_path / 'scaling.csv').read_text().splitlines()) == 5


def test_pitcher_scaling_refuses_a_missing_cache(tmp_path, capsys):
    from training.pitcher_scaling import main
    with pytest.raises(SystemExit):
        main(['--extra', str(tmp_path / 'absent'), '--out', str(tmp_path / 'out')])
    assert 'absent: no such cache' in capsys.readouterr().err
    present = tmp_path / 'present'
    present.mkdir()
    with pytest.raises(SystemExit):  # each cache of a comma-separated list is checked
        main(['--extra', f'{present},{tmp_path / "absent2"}', '--out', str(tmp_path / 'out')])
    assert 'absent2: no such cache' in capsys.readouterr().err


def test_a_cache_list_is_its_folders_in_order_without_blanks():
    from training.config import cache_list
    assert cache_list('') == []
    assert cache_list(' a/b , c,, d ') == ['a/b', 'c', 'd']

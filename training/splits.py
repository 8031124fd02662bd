"""
Train / validation / test splits of a TrialCache.

- ``paper``: test = ``cache.paper_split`` (2 of 10 per participant and block, unchanged,
  so test numbers stay comparable with earlier runs); validation = ``val_per_group`` of
  the remaining trials of every (participant, block), drawn with a generator seeded by
  (``val_seed``, participant, block); train = the rest. 540 trials: 378 / 54 / 108.
- ``lopo:<P>``: test = every trial of participant P; validation = ``val_per_group`` per
  (participant, block) of the other participants; train = the rest.
- ``lopo:<P>/<Q>[,<R>...]``: test = every trial of P; validation = every trial of the
  training participants Q, R, ... (a person-wise validation: the epoch and the
  temperature are then chosen on people the network never saw, like the test
  person); train = the other participants. ``val_per_group`` is not used.

Recipes, early stopping and calibration are chosen on validation; the test trials are
evaluated once, on the final weights.
"""

from dataclasses import dataclass
from typing import Dict, TYPE_CHECKING

import numpy as np
from pitch_predictor.data.cache import lopo_splits, paper_split

if TYPE_CHECKING:  # only for annotations
    from pitch_predictor.data.cache import TrialCache


class SplitError(ValueError):
    """A split name is malformed or does not fit the cache."""


@dataclass(frozen=True)
class Split:
    """Trial indices (sorted int64) of the three parts; they are disjoint."""

    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def sizes(self) -> Dict[str, int]:
        """Return the number of trials of each part."""
        return {'train': int(len(self.train)), 'validation': int(len(self.validation)),
                'test': int(len(self.test))}


def carve_validation(cache: 'TrialCache', pool: np.ndarray, per_group: int,
                     seed: int = 0) -> np.ndarray:
    """
    Return ``per_group`` trials of ``pool`` per (participant, block), sorted.

    Each group's draw depends only on (seed, participant, block) and the group's members
    ordered by ``trial_index``, so it does not change with the rest of the pool.
    """
    pool = np.asarray(pool, dtype=np.int64)
    if per_group <= 0 or len(pool) == 0:
        return np.zeros(0, dtype=np.int64)
    parts = np.asarray(cache.participants)[pool]
    labels = np.asarray(cache.labels)[pool]
    order = np.asarray(cache.trial_index)[pool]
    chosen = []
    for p in np.unique(parts):
        for c in np.unique(labels[parts == p]):
            members = np.flatnonzero((parts == p) & (labels == c))
            members = members[np.argsort(order[members], kind='stable')]
            rng = np.random.default_rng([int(seed), int(p), int(c)])
            chosen.extend(pool[members[rng.permutation(len(members))[:per_group]]].tolist())
    return np.array(sorted(chosen), dtype=np.int64)


def make_split(cache: 'TrialCache', split: str, val_per_group: int = 1,
               val_seed: int = 0) -> Split:
    """Return the :class:`Split` named ``paper``, ``lopo:<P>`` or ``lopo:<P>/<Q>,...``."""
    people = ()
    if split == 'paper':
        rest, test = paper_split(cache)
    elif split.startswith('lopo:'):
        wanted, _, held = split.split(':', 1)[1].partition('/')
        folds = {str(p): (tr, te) for p, tr, te in lopo_splits(cache)}
        if wanted not in folds:
            raise SplitError(f'split {split!r}: no participant {wanted!r} in the cache '
                             f'(participants: {sorted(folds)})')
        rest, test = folds[wanted]
        if held or split.endswith('/'):
            people = tuple(held.split(','))
            bad = [q for q in people if q not in folds or q == wanted]
            if bad or len(set(people)) != len(people):
                raise SplitError(f'split {split!r}: the validation participants must be '
                                 f'distinct training participants of the cache, got '
                                 f'{list(people)} (participants: {sorted(folds)}, test: '
                                 f'{wanted!r})')
    else:
        raise SplitError('split must be "paper", "lopo:<participant>" or '
                         f'"lopo:<participant>/<validation participants>", got {split!r}')
    rest = np.asarray(rest, dtype=np.int64)
    if people:
        names = np.asarray([str(n) for n in cache.participant_names])
        validation = rest[np.isin(names[np.asarray(cache.participants)[rest]], people)]
    else:
        validation = carve_validation(cache, rest, val_per_group, val_seed)
    train = np.setdiff1d(rest, validation).astype(np.int64)
    return Split(split, train, validation, np.asarray(test, dtype=np.int64))

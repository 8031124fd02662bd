"""
Train / validation / test splits of a TrialCache.

- ``paper``: test = ``cache.paper_split`` (2 of 10 per participant and block, unchanged,
  so test numbers stay comparable with earlier runs); validation = ``val_per_group`` of
  the remaining trials of every (participant, block), drawn with a generator seeded by
  (``val_seed``, participant, block); train = the rest. 540 trials: 378 / 54 / 108.
- ``lopo:<P>``: test = every trial of participant P; validation = ``val_per_group`` per
  (participant, block) of the other participants; train = the rest.

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
    """Return the :class:`Split` named ``paper`` or ``lopo:<participant>``."""
    if split == 'paper':
        rest, test = paper_split(cache)
    elif split.startswith('lopo:'):
        wanted = split.split(':', 1)[1]
        folds = {str(p): (tr, te) for p, tr, te in lopo_splits(cache)}
        if wanted not in folds:
            raise SplitError(f'split {split!r}: no participant {wanted!r} in the cache '
                             f'(participants: {sorted(folds)})')
        rest, test = folds[wanted]
    else:
        raise SplitError(f'split must be "paper" or "lopo:<participant>", got {split!r}')
    rest = np.asarray(rest, dtype=np.int64)
    validation = carve_validation(cache, rest, val_per_group, val_seed)
    train = np.setdiff1d(rest, validation).astype(np.int64)
    return Split(split, train, validation, np.asarray(test, dtype=np.int64))

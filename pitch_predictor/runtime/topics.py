"""
Compatibility name: the interface names moved to :mod:`pitch_predictor.topics`.

The recordings (``data/bag.py``) use them too, and the data layer does not import the
node's runtime; import :mod:`pitch_predictor.topics` in new code.
"""

from pitch_predictor.topics import *  # noqa: F401,F403

"""
The model registry: every network the package builds, listed in one table (``MODELS``).

A registry name maps to a :class:`ModelSpec`: the builder, the default (paper-size)
config, which lists every config key the builder takes, and the overrides of the small
fast variant. The table is complete once this module is imported; the model modules
(``networks``, ``peers``, ``two_stream``) define builders and never import this one.
Adding a network: write its builder and add one line below.
"""

import copy
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

from pitch_predictor.models import networks, peers, pose_gru, two_stream
from pitch_predictor.models.networks import PitchNet


@dataclass(frozen=True)
class ModelSpec:
    """A registered network: its builder, default config and fast-variant overrides."""

    name: str
    builder: Callable[..., PitchNet]
    defaults: Dict[str, Any]
    fast: Dict[str, Any]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.fast) - set(self.defaults))
        if unknown:
            raise ValueError(f'{self.name}: fast config keys {unknown} are not in its defaults')


def _specs(*rows) -> Dict[str, ModelSpec]:
    return {name: ModelSpec(name, builder, copy.deepcopy(defaults), copy.deepcopy(fast))
            for name, builder, defaults, fast in rows}


MODELS: Dict[str, ModelSpec] = _specs(
    # The paper's Table I networks (networks.py).
    ('convgru1d_alexnet', networks.convgru1d_alexnet, networks.CONVGRU_DEFAULTS,
     networks.FAST_CONFIG),
    ('convgru2d_alexnet', networks.convgru2d_alexnet, networks.CONVGRU_DEFAULTS,
     networks.FAST_CONFIG),
    ('convgru2d2_alexnet', networks.convgru2d2_alexnet, networks.CONVGRU_DEFAULTS,
     networks.FAST_CONFIG),
    ('gru_alexnet', networks.gru_alexnet, networks.GRU_DEFAULTS, networks.GRU_FAST),
    # Peers (peers.py): torchvision's video ResNets and the skeleton GRU.
    ('r3d_18', peers.r3d_18, peers.VIDEO_DEFAULTS, peers.VIDEO_FAST),
    ('mc3_18', peers.mc3_18, peers.VIDEO_DEFAULTS, peers.VIDEO_FAST),
    ('r2plus1d_18', peers.r2plus1d_18, peers.VIDEO_DEFAULTS, peers.VIDEO_FAST),
    ('skeleton_gru', peers.skeleton_gru, peers.SKELETON_DEFAULTS, peers.SKELETON_FAST),
    # RGB + skeleton (two_stream.py).
    ('two_stream_2d', two_stream.two_stream_2d, two_stream.TWO_STREAM_DEFAULTS,
     two_stream.TWO_STREAM_FAST),
    ('two_stream_1d', two_stream.two_stream_1d, two_stream.TWO_STREAM_DEFAULTS,
     two_stream.TWO_STREAM_FAST),
    # RGB only, the image's pose as the bottleneck (pose_gru.py).
    ('pose_gru_alexnet', pose_gru.pose_gru_alexnet, pose_gru.POSE_GRU_DEFAULTS,
     pose_gru.POSE_GRU_FAST),
)


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise KeyError(f'unknown model {name!r}; registered: {list_models()}')
    return MODELS[name]


def list_models() -> List[str]:
    """Return the registered model names, sorted."""
    return sorted(MODELS)


def model_config_defaults(name: str) -> Dict[str, Any]:
    """Return a copy of the full default (paper-size) config of ``name``."""
    return copy.deepcopy(_spec(name).defaults)


def fast_config(name: str) -> Dict[str, Any]:
    """Return the full config of the small, fast variant of ``name`` (input 112)."""
    spec = _spec(name)
    config = copy.deepcopy(spec.defaults)
    config.update(copy.deepcopy(spec.fast))
    return config


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def build_model(name: str, **config: Any) -> PitchNet:
    """
    Build registered model ``name`` with ``config`` overriding its defaults.

    Unknown names raise ``KeyError``, unknown config keys ``TypeError``. The model's
    ``name`` and ``config`` (the full config, tuples as lists) are set for checkpoints.
    """
    spec = _spec(name)
    unknown = sorted(set(config) - set(spec.defaults))
    if unknown:
        raise TypeError(f'{name}: unknown config keys {unknown}; it takes '
                        f'{sorted(spec.defaults)}')
    full = copy.deepcopy(spec.defaults)
    full.update({key: _plain(value) for key, value in config.items()})
    model = spec.builder(**full)
    model.name = name
    model.config = full
    return model

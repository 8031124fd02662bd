"""
Training configuration: one dataclass, read from YAML plus ``key=value`` overrides.

A config file sets any subset of :class:`TrainConfig`'s fields; the command line can
override any of them (``epochs=5``, ``model_config.fusion=flat``), values parsed as
YAML so ``5`` is an int, ``1e-4`` a float and ``true`` a bool.
"""

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml


class ConfigError(ValueError):
    """A config file or override is malformed or names an unknown key."""


@dataclass
class TrainConfig:
    """Everything that defines one training run (the defaults are the paper's recipe)."""

    name: str = 'run'
    # Network: registry name, preset ('paper' = the library's defaults, 'fast' =
    # networks.FAST_CONFIG) and explicit overrides of its keyword arguments.
    model: str = 'convgru2d_alexnet'
    model_preset: str = 'paper'
    model_config: Dict[str, Any] = field(default_factory=dict)
    # Image geometry: 'paper' (240 stored, 224 input), 'fast' (120 stored, 112 input),
    # or a dict of PreprocessConfig fields.
    preprocess: Any = 'paper'
    sampling: int = 1
    # Optimisation (Section IV-B: Adam, lr 1e-4, batch 32, L2 5e-4, 300 epochs).
    epochs: int = 300
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 5e-4
    optimizer: str = 'adam'
    lr_schedule: str = 'constant'
    warmup_epochs: int = 0
    grad_clip: float = 0.0
    label_smoothing: float = 0.0
    # Two-stream models: weight of the auxiliary per-branch cross-entropies (0 = off).
    aux_loss_weight: float = 0.0
    # RGB ConvGRU networks: weight of the pose-supervision loss (training.pose_supervision:
    # regress every frame's projected joints from its backbone features; 0 = off). Uses
    # the skeleton at training time only; model.pt is the plain RGB network.
    pose_loss_weight: float = 0.0
    # Joint augmentation (training.joint_augment.JointAugmentConfig fields, all off by
    # default): scale, rotate_deg, camera_height, camera_tilt_deg, noise_mm, drop_joints,
    # drop_frames, tempo.
    joint_augment: Dict[str, Any] = field(default_factory=dict)
    # Weight initialisation: 'default' (PyTorch's) or 'kaiming' (He normal for leaky
    # ReLU on every conv and linear weight, zero biases; recurrent cells keep theirs).
    init: str = 'default'
    # Optional ImageNet AlexNet weights (a local file; nothing is downloaded).
    pretrained: str = ''
    # Two-stream models: start the RGB / skeleton branch from a trained checkpoint
    # (model.pt of a convgru1d/2d_alexnet / skeleton_gru run with the same branch sizes),
    # then train end to end (python -m training.fuse trains the head alone instead).
    init_rgb: str = ''
    init_joints: str = ''
    # Data: a TrialCache directory (or a dataset the cache is built from) and the split:
    # 'paper' (8 train / 2 test per participant and block), 'lopo:<participant>', or
    # 'lopo:<participant>/<Q>[,<R>...]' (validation = every trial of Q, R: new people).
    data: str = 'data/synthetic/cache_fast'
    split: str = 'paper'
    # Validation (training.splits): this many trials per (participant, block) of the
    # training part, drawn with val_seed; 0 = no validation (train on every non-test
    # trial, keep the last epoch's weights).
    val_per_group: int = 1
    val_seed: int = 0
    # Early stopping: stop after this many epochs without a better validation score
    # (accuracy, ties broken by lower NLL); 0 = run every epoch. model.pt always holds
    # the best-validation epoch's weights when there is a validation split.
    patience: int = 0
    # Evaluate the training split with test-time averaging at the end (beside the
    # running accuracy on augmented clips): shows whether the network fits its data.
    eval_train: bool = True
    # Temperature scaling: after training, fit one temperature on validation (the NLL of
    # the mean calibrated softmax over test clips), store it in model.pt's meta.
    calibrate: bool = True
    # A miss-set TrialCache (labels = actual block - 1, intended.npy = block aimed at):
    # evaluated at the end on every trial, against both, into metrics.json['miss'].
    miss_data: str = ''
    # TrialCaches of other pitchers (e.g. ``pitch-sim cache --generate --seed 2``; several
    # separated by commas): every trial joins the training split only; validation and
    # test stay on ``data``.
    extra_train_data: str = ''
    # Use the first N pitchers of extra_train_data, over its caches in order (0: all).
    extra_train_pitchers: int = 0
    out: str = ''
    # Runtime.
    seed: int = 0
    device: str = 'auto'
    num_workers: int = 2
    amp: bool = True
    # Validation every this many epochs (the last epoch always; 0 = only at the end).
    # The test split is evaluated once, after training, on the chosen weights.
    eval_every: int = 1
    max_minutes: float = 0.0
    resume: bool = True
    threads: int = 0

    def __post_init__(self) -> None:
        """Coerce scalars to the field's type (YAML reads ``1e-4`` as a string)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ('float', float) and not isinstance(value, float):
                setattr(self, f.name, self._convert(float, f.name, value))
            elif f.type in ('int', int) and not isinstance(value, int):
                setattr(self, f.name, self._convert(int, f.name, value))
            elif f.type in ('bool', bool) and not isinstance(value, bool):
                setattr(self, f.name, str(value).lower() in ('1', 'true', 'yes', 'on'))
            elif f.type in ('str', str) and not isinstance(value, str):
                setattr(self, f.name, str(value))

    @staticmethod
    def _convert(kind: type, name: str, value: Any) -> Any:
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f'config key {name!r} needs a {kind.__name__}, '
                              f'got {value!r}') from None

    def run_dir(self) -> Path:
        """Return the output folder (``runs/<name>`` unless ``out`` is set)."""
        return Path(self.out) if self.out else Path('runs') / self.name

    def to_dict(self) -> Dict[str, Any]:
        """Return a plain, YAML-serialisable dict."""
        return asdict(self)


_FIELD_NAMES = {f.name for f in fields(TrainConfig)}


def cache_list(value: str) -> List[str]:
    """Return the cache folders of a comma-separated list (``extra_train_data``), in order."""
    return [part.strip() for part in value.split(',') if part.strip()]


def _apply(values: Dict[str, Any], key: str, value: Any, where: str) -> None:
    top, _, rest = key.partition('.')
    if top not in _FIELD_NAMES:
        raise ConfigError(f'{where}: unknown config key {top!r} '
                          f'(known: {", ".join(sorted(_FIELD_NAMES))})')
    if not rest:
        values[top] = value
        return
    # Dotted keys reach into dict-valued fields such as model_config or preprocess.
    node = values.setdefault(top, {})
    if not isinstance(node, dict):
        node = values[top] = {}
    parts = rest.split('.')
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    """Parse ``key=value`` strings (values as YAML scalars) into a dict."""
    parsed: Dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition('=')
        if not sep or not key:
            raise ConfigError(f'override {item!r} is not of the form key=value')
        parsed[key.strip()] = yaml.safe_load(raw) if raw.strip() else ''
    return parsed


def load_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None,
                ) -> TrainConfig:
    """Read a YAML config (optional) and apply overrides; unknown keys are errors."""
    values: Dict[str, Any] = {}
    if path:
        config_path = Path(path)
        try:
            loaded = yaml.safe_load(config_path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f'{config_path}: cannot read config: {exc}') from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f'{config_path}: top level must be a mapping')
        values.setdefault('name', config_path.stem)
        for key, value in loaded.items():
            _apply(values, key, value, str(config_path))
    for key, value in (overrides or {}).items():
        _apply(values, key, value, 'command line')
    return TrainConfig(**values)


def save_config(config: TrainConfig, path: Path) -> None:
    """Write the resolved config (what actually ran) as YAML."""
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

"""
One file per trained model: name, config, preprocessing, sampling, classes and weights.

The file is a ``torch.save`` of a plain dict (strings, numbers, lists, dicts, tensors)::

    format            'pitch_predictor.checkpoint'
    format_version    1
    model_name        registry name for registry.build_model
    model_config      the full keyword config of build_model
    preprocess        PreprocessConfig as a dict
    sampling_method   Table II method (1..7) the model was trained with
    class_names       ['block1', ..., 'block9'] (class index = block - 1)
    block_grid        [[1, 2, 3], [4, 5, 6], [7, 8, 9]] rows top to bottom, as the pitcher
                      sees the target
    input_kind        what the network takes: 'rgb' (clips), 'joints' (Kinect joints) or
                      'rgb+joints' (both, the two-stream networks); absent in files written
                      before it was recorded (then only the built network knows)
    meta              free-form plain data (training run, metrics, ``temperature``: the
                      calibration temperature read by ``decision.checkpoint_temperature``)
    state_dict        the weights (CPU tensors)

Loading uses ``torch.load(..., weights_only=True)``: a file that would run code on
unpickling is refused, never executed.
"""

from dataclasses import dataclass, field
import os
from pathlib import Path
import pickle
from typing import Any, Dict, List, Optional, Union

from pitch_predictor.kinect import CLASS_NAMES, GRID_COLS, GRID_ROWS, row_col_to_block
from pitch_predictor.models.preprocessing import PreprocessConfig, PreprocessError
import torch
from torch import nn

FORMAT_NAME = 'pitch_predictor.checkpoint'
FORMAT_VERSION = 1

PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, or does not match this code."""


def block_grid() -> List[List[int]]:
    """Return the target grid as block numbers, rows top to bottom, as the pitcher sees it."""
    return [[row_col_to_block(r, c) for c in range(GRID_COLS)] for r in range(GRID_ROWS)]


@dataclass
class Checkpoint:
    """Everything a checkpoint file holds, with ``preprocess`` as a dataclass."""

    model_name: str
    model_config: Dict[str, Any]
    preprocess: PreprocessConfig
    sampling_method: int
    class_names: List[str]
    block_grid: List[List[int]]
    format_version: int
    state_dict: Dict[str, torch.Tensor]
    meta: Dict[str, Any] = field(default_factory=dict)
    path: str = ''
    input_kind: Optional[str] = None


_PLAIN = (str, int, float, bool, type(None))


def _check_plain(value: Any, where: str) -> Any:
    """Return ``value`` with tuples as lists; reject what weights_only loading refuses."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        return [_check_plain(v, f'{where}[{i}]') for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CheckpointError(f'{where}: keys must be strings, got {key!r}')
            out[key] = _check_plain(item, f'{where}.{key}')
        return out
    if hasattr(value, 'item') and getattr(value, 'ndim', None) == 0:  # numpy/torch scalars
        return value.item()
    raise CheckpointError(
        f'{where} holds a {type(value).__name__}; checkpoints store only strings, numbers, '
        'booleans, None, lists and dicts')


def save_checkpoint(path: PathLike, model: nn.Module, *, model_name: str,
                    model_config: dict, preprocess: PreprocessConfig,
                    sampling_method: int, meta: Optional[dict] = None) -> None:
    """Write ``model`` and its settings to ``path`` (atomically, via a temporary file)."""
    path = Path(path)
    payload = {
        'format': FORMAT_NAME,
        'format_version': FORMAT_VERSION,
        'model_name': str(model_name),
        'model_config': _check_plain(dict(model_config), 'model_config'),
        'preprocess': preprocess.to_dict(),
        'sampling_method': int(sampling_method),
        'class_names': list(CLASS_NAMES),
        'block_grid': block_grid(),
        'input_kind': str(getattr(model, 'input_kind', 'rgb')),
        'meta': _check_plain(dict(meta or {}), 'meta'),
        'state_dict': {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ''


def _refused_global(message: str) -> str:
    """Return the reason when torch refused a global (code) in the file, else ''."""
    for line in message.splitlines():
        if 'Unsupported global' in line:
            return line.split('error:', 1)[-1].strip().split('. Please')[0]
    return ''


_REQUIRED = ('format_version', 'model_name', 'model_config', 'preprocess',
             'sampling_method', 'class_names', 'block_grid', 'state_dict')


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = 'cpu'
                    ) -> Checkpoint:
    """
    Read a checkpoint written by :func:`save_checkpoint`; never executes code from it.

    Raises :class:`CheckpointError` (naming the file) when it is missing, not a
    checkpoint, corrupt, of another format version, or inconsistent with this package.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'checkpoint {path}: no such file')
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _refused_global(str(exc))
        if refused:
            raise CheckpointError(
                f'checkpoint {path}: refused, it holds objects other than weights and plain '
                f'data ({refused}); loading it could run code') from None
        raise CheckpointError(f'checkpoint {path}: corrupt or not a torch checkpoint '
                              '(unreadable pickle data)') from None
    except Exception as exc:  # zip, pickle and EOF errors all mean a corrupt file
        raise CheckpointError(
            f'checkpoint {path}: corrupt or not a torch checkpoint '
            f'({type(exc).__name__}: {_first_line(str(exc))})') from None
    if not isinstance(payload, dict) or payload.get('format') != FORMAT_NAME:
        raise CheckpointError(f'checkpoint {path}: not a {FORMAT_NAME} file')
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise CheckpointError(f'checkpoint {path}: missing fields {missing}')
    version = payload['format_version']
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f'checkpoint {path}: format version {version}, this code reads version '
            f'{FORMAT_VERSION}')
    if list(payload['class_names']) != list(CLASS_NAMES):
        raise CheckpointError(
            f'checkpoint {path}: class names {payload["class_names"]} differ from this '
            f"package's {list(CLASS_NAMES)}")
    if payload['block_grid'] != block_grid():
        raise CheckpointError(
            f'checkpoint {path}: block grid {payload["block_grid"]} differs from '
            f'{block_grid()}')
    try:
        preprocess = PreprocessConfig.from_dict(payload['preprocess'])
    except (PreprocessError, TypeError) as exc:
        raise CheckpointError(f'checkpoint {path}: bad preprocess settings: {exc}') from None
    state_dict = payload['state_dict']
    if not isinstance(state_dict, dict) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f'checkpoint {path}: state_dict is not a dict of tensors')
    return Checkpoint(
        model_name=str(payload['model_name']),
        model_config=dict(payload['model_config']),
        preprocess=preprocess,
        sampling_method=int(payload['sampling_method']),
        class_names=list(payload['class_names']),
        block_grid=payload['block_grid'],
        format_version=int(version),
        state_dict=state_dict,
        meta=dict(payload.get('meta') or {}),
        path=str(path),
        input_kind=None if payload.get('input_kind') is None else str(payload['input_kind']),
    )


def build_model_from_checkpoint(ckpt: Checkpoint,
                                device: Union[str, torch.device] = 'cpu') -> nn.Module:
    """
    Build the checkpoint's network, load its weights, move it to ``device``, eval mode.

    Config keys missing from the file (written before the key existed) take the registry
    default, which is always the behaviour the key's addition preserved (e.g.
    ``skeleton_gru``'s ``features`` = 'spinebase').
    Raises :class:`CheckpointError` when the name is not registered, the config is not
    accepted by the builder, or the weights do not fit the built network.
    """
    # Imported here: reading a checkpoint's settings should not load torchvision.
    from pitch_predictor.models.registry import build_model

    where = ckpt.path or '<in memory>'
    try:
        model = build_model(ckpt.model_name, **ckpt.model_config)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f'checkpoint {where}: cannot build model {ckpt.model_name!r} with its config: '
            f'{exc}') from None
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        raise CheckpointError(
            f'checkpoint {where}: weights do not match model {ckpt.model_name!r} '
            f'built from its config: {" ".join(first[:3])}') from None
    built_kind = getattr(model, 'input_kind', 'rgb')
    if ckpt.input_kind is not None and ckpt.input_kind != built_kind:
        raise CheckpointError(
            f'checkpoint {where}: recorded input kind {ckpt.input_kind!r}, but model '
            f'{ckpt.model_name!r} built from its config takes {built_kind!r}')
    return model.to(device).eval()

"""
The models shipped with the package (trained by ``training/train.py``, see MODEL_CARD.md).

The default is the joints-only ``skeleton_gru_fast.pt``, the best on validation; the
RGB-only ``pose_gru_fast.pt`` (the best without a skeleton), the paper's RGB-only
``convgru2d_fast.pt`` and the streamable ``convgru1d_fast.pt`` are selectable with the
node's ``model_path``.
"""

from pathlib import Path

DEFAULT_MODEL_FILE = 'skeleton_gru_fast.pt'
RGB_MODEL_FILES = ('pose_gru_fast.pt', 'convgru2d_fast.pt', 'convgru1d_fast.pt')


def default_model_path() -> Path:
    """Return the path of the shipped default checkpoint (it may not exist in a dev tree)."""
    return shipped_model_path(DEFAULT_MODEL_FILE)


def shipped_model_path(name: str) -> Path:
    """Return the path of the shipped checkpoint file ``name`` (it may not exist)."""
    if Path(name).name != name:
        raise ValueError(f'{name!r}: a shipped model is named by its file name alone')
    return Path(__file__).resolve().parent / name

"""The model shipped with the package (trained by ``training/train.py``, see MODEL_CARD.md)."""

from pathlib import Path

DEFAULT_MODEL_FILE = 'convgru2d_fast.pt'


def default_model_path() -> Path:
    """Return the path of the shipped default checkpoint (it may not exist in a dev tree)."""
    return Path(__file__).resolve().parent / DEFAULT_MODEL_FILE

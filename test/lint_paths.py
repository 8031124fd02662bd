"""The source trees the linters check (never .venv, build or install)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_PATHS = [
    str(ROOT / name)
    for name in ('pitch_predictor', 'launch', 'test', 'training', 'bench', 'setup.py')
    if (ROOT / name).exists()
]

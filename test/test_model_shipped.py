"""Every shipped model file loads, builds, and says what its model card says."""

import re

from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
from pitch_predictor.shipped_model import (
    DEFAULT_MODEL_FILE, default_model_path, RGB_MODEL_FILES, shipped_model_path)
import pytest
import torch

FOLDER = default_model_path().parent
CARD = (FOLDER / 'MODEL_CARD.md').read_text()


def card_sections():
    """Return {file name: its section of MODEL_CARD.md}."""
    parts = re.split(r'^# Model card: (\S+\.pt).*$', CARD, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_shipped_file_has_a_card_section_and_the_default_is_named():
    files = sorted(p.name for p in FOLDER.glob('*.pt'))
    assert DEFAULT_MODEL_FILE in files
    assert sorted(card_sections()) == files
    assert "the node's default" in CARD.split(f'# Model card: {DEFAULT_MODEL_FILE}')[1][:60]


def test_shipped_model_path_names_the_shipped_files_only():
    for name in (DEFAULT_MODEL_FILE, *RGB_MODEL_FILES):
        assert shipped_model_path(name).is_file()
        assert shipped_model_path(name).parent == FOLDER
    for bad in ('../x.pt', '/tmp/x.pt', 'sub/x.pt'):
        with pytest.raises(ValueError, match='file name alone'):
            shipped_model_path(bad)


@pytest.mark.parametrize('name', sorted(p.name for p in FOLDER.glob('*.pt')))
def test_shipped_file_matches_its_card(name):
    ckpt = load_checkpoint(FOLDER / name)
    model = build_model_from_checkpoint(ckpt, torch.device('cpu'))
    assert not model.training
    section = card_sections()[name]
    network = re.search(r'\*\*Network\*\*: `([a-z0-9_]+)`', section).group(1)
    assert network == ckpt.model_name
    accuracy = float(re.search(r'\*\*Within-subject test\*\*[^*]*\*\*([0-9.]+) %\*\*',
                               section).group(1))
    assert abs(accuracy - 100 * ckpt.meta['accuracy']) < 0.05
    epoch = int(re.search(r'best validation epoch (\d+)', section).group(1))
    assert epoch == ckpt.meta['chosen_epoch']
    parameters = sum(p.numel() for p in model.parameters())
    stated = re.search(r'\(([0-9.,]+) (M )?parameters\)', section)
    value = float(stated.group(1).replace(',', ''))
    assert abs(value * (1e6 if stated.group(2) else 1) - parameters) <= (
        0.005e6 if stated.group(2) else 0)

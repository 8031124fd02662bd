"""Choose the torch device: CUDA when asked for or available, else the CPU."""

import re
from typing import Union

import torch

_CUDA_INDEX = re.compile(r'^cuda:(\d+)$')


class DeviceError(RuntimeError):
    """The requested device does not exist on this machine or is not understood."""


def select_device(pref: Union[str, torch.device] = 'auto') -> torch.device:
    """
    Return the device for ``pref``: 'auto', 'cpu', 'cuda' or 'cuda:N'.

    'auto' picks ``cuda`` when a CUDA device is available and the CPU otherwise.
    Asking for CUDA where there is none (or for a CUDA index past the last device)
    raises :class:`DeviceError`.
    """
    text = str(pref).strip().lower()
    if text == 'auto':
        return torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')
    if text == 'cpu':
        return torch.device('cpu')
    match = _CUDA_INDEX.match(text)
    if text == 'cuda' or match:
        if not torch.cuda.is_available():
            raise DeviceError(
                f'device {pref!r} requested but CUDA is not available here '
                f'(torch {torch.__version__}); use device "cpu" or "auto"')
        if match:
            index = int(match.group(1))
            count = torch.cuda.device_count()
            if index >= count:
                raise DeviceError(
                    f'device {pref!r} requested but only {count} CUDA device(s) exist')
        return torch.device(text)
    raise DeviceError(f'unknown device {pref!r}: use "auto", "cpu", "cuda" or "cuda:N"')

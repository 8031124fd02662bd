"""Device selection, with CUDA simulated by monkeypatching (never real CUDA)."""

from pitch_predictor.models.device import DeviceError, select_device
import pytest
import torch


def fake_cuda(monkeypatch, available: bool, count: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: available)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: count if available else 0)


def test_cpu_is_always_cpu(monkeypatch):
    fake_cuda(monkeypatch, True)
    assert select_device('cpu') == torch.device('cpu')
    assert select_device(torch.device('cpu')) == torch.device('cpu')


def test_auto_without_cuda_is_cpu(monkeypatch):
    fake_cuda(monkeypatch, False)
    assert select_device() == torch.device('cpu')
    assert select_device('AUTO') == torch.device('cpu')


def test_auto_with_cuda_is_cuda(monkeypatch):
    fake_cuda(monkeypatch, True)
    assert select_device('auto') == torch.device('cuda')


def test_cuda_requested_but_absent(monkeypatch):
    fake_cuda(monkeypatch, False)
    for pref in ('cuda', 'cuda:0'):
        with pytest.raises(DeviceError, match='CUDA is not available'):
            select_device(pref)


def test_cuda_index(monkeypatch):
    fake_cuda(monkeypatch, True, count=2)
    assert select_device('cuda:1') == torch.device('cuda:1')
    with pytest.raises(DeviceError, match='only 2 CUDA'):
        select_device('cuda:2')


def test_unknown_device_name():
    with pytest.raises(DeviceError, match='unknown device'):
        select_device('gpu')

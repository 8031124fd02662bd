"""Describe the machine a benchmark ran on (imported by the bench scripts, not a benchmark)."""

import os
import platform
import time
from typing import Callable, Dict, List

import torch


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo (or platform's guess)."""
    try:
        with open('/proc/cpuinfo') as fh:
            for line in fh:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def machine_info() -> Dict[str, str]:
    """Return CPU model, cores, memory, OS, Python and torch versions."""
    info = {
        'cpu': cpu_model(),
        'cores': str(os.cpu_count()),
        'os': platform.platform(),
        'python': platform.python_version(),
    }
    info['load average (1, 5, 15 min)'] = ', '.join(f'{v:.1f}' for v in os.getloadavg())
    try:
        with open('/proc/meminfo') as fh:
            kib = int(fh.readline().split()[1])
        info['memory'] = f'{kib / 2**20:.1f} GiB'
    except (OSError, ValueError, IndexError):
        pass
    try:
        import torch
        info['torch'] = torch.__version__
        info['torch threads'] = str(torch.get_num_threads())
        info['cuda'] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
    except ImportError:
        info['torch'] = 'not installed'
    return info


def machine_line(timed: bool = True) -> str:
    """Return the machine in one line, for the head of a benchmark's output."""
    i = machine_info()
    averages = os.getloadavg()
    load = ', '.join(f'{v:.1f}' for v in averages)
    line = (f'machine: {i["cpu"]}, {i["cores"]} cores, {i.get("memory", "?")} RAM, '
            f'torch {i.get("torch")} ({i.get("torch threads")} threads), CUDA {i.get("cuda")}; '
            f'load average at start {load}')
    if timed and averages[0] > 0.75 * (os.cpu_count() or 1):
        # Other processes compete for the cores: torch's OpenMP threads then wait for
        # each other and small operations get many times slower.
        line += '\nWARNING: the machine is busy (load > cores): timings below are inflated'
    return line


def time_call(fn: Callable[[], object], repeat: int, warmup: int = 2) -> List[float]:
    """Run ``fn`` ``warmup`` times untimed, then return ``repeat`` wall times in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def ratio_line(description: str, value: float) -> str:
    """Format one measured ratio; run_all.py collects these lines into BENCHMARKS.md."""
    return f'ratio: {description} = {value:.2f}x'


def saved_bytes(run: Callable[[], torch.Tensor], params: List[torch.Tensor]) -> int:
    """Bytes of the distinct storages autograd saves while ``run`` builds its graph."""
    param_ptrs = {p.untyped_storage().data_ptr() for p in params}
    storages: Dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in param_ptrs:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = run()
    # The output itself is held until backward too (and is what the next layer gets).
    storages.setdefault(out.untyped_storage().data_ptr(), out.untyped_storage().nbytes())
    return sum(storages.values())

"""
Run every benchmark script in bench/ (one after another) and write BENCHMARKS.md.

Each script runs as its own process (benchmarks must not share warm caches or
threads). Its output goes into its own section of BENCHMARKS.md; every line of the
form ``ratio: <what> = <value>x`` is also collected into the summary table at the top.
With ``--only``, the other scripts' sections already in BENCHMARKS.md are kept.

    python bench/run_all.py                 # all (what `make bench` runs)
    python bench/run_all.py --only decision_latency memory_per_frame
"""

import argparse
import datetime
from pathlib import Path
import re
import subprocess
import sys
import time
from typing import Dict, List

from machine import machine_info

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
NOT_BENCHMARKS = {'run_all', 'machine', 'bench_models'}
FAST_CACHE = 'data/synthetic/cache_fast'
# Scripts that take arguments: one list per run (each run is its own process).
SCRIPT_RUNS = {
    'input_pipeline': [['--data', FAST_CACHE],
                       ['--data', FAST_CACHE, '--layout', 'data/synthetic/layout']],
    'node_soak': [['qos'], ['ingest'], ['latency'], ['soak', '--seconds', '120']],
}
# Data a script needs; without it the script is reported as skipped, not failed.
NEEDS = {
    'input_pipeline': (FAST_CACHE, 'pitch-sim cache --preprocess fast'),
    'data_leak_check': (FAST_CACHE, 'pitch-sim cache --preprocess fast'),
    'network_leak_check': (FAST_CACHE, 'pitch-sim cache --preprocess fast'),
}
RATIO_LINE = re.compile(r'^ratio:\s*(?P<what>.+?)\s*=\s*(?P<value>[-0-9.eE+]+)x\s*$')
SECTION = re.compile(r'<!-- bench:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->\n',
                     re.S)


def discover() -> List[str]:
    """Return the names of the benchmark scripts (files with a ``__main__`` block)."""
    names = []
    for path in sorted(BENCH_DIR.glob('*.py')):
        if path.stem in NOT_BENCHMARKS or path.stem.startswith('_'):
            continue
        if "__name__ == '__main__'" in path.read_text():
            names.append(path.stem)
    return names


def run_one(name: str, timeout_s: float) -> Dict[str, object]:
    """Run one script (once per entry of SCRIPT_RUNS); return output, exit code, wall time."""
    need = NEEDS.get(name)
    if need and not (ROOT / need[0]).exists():
        text = f'skipped: needs {need[0]} (make it with `{need[1]}`)'
        print(f'==> bench/{name}.py {text}\n', flush=True)
        return {'output': text, 'code': 0, 'wall_s': 0.0}
    outputs, code, t0 = [], 0, time.perf_counter()
    for args in SCRIPT_RUNS.get(name, [[]]):
        label = ' '.join([f'bench/{name}.py', *args])
        print(f'==> {label}', flush=True)
        try:
            proc = subprocess.run([sys.executable, str(BENCH_DIR / f'{name}.py'), *args],
                                  cwd=ROOT, capture_output=True, text=True,
                                  timeout=timeout_s)
            output, rc = proc.stdout, proc.returncode
            if rc != 0:
                output += '\n' + proc.stderr[-3000:]
        except subprocess.TimeoutExpired as exc:
            partial = exc.stdout or ''
            output = partial.decode(errors='replace') if isinstance(partial, bytes) else partial
            output += f'\n(timed out after {timeout_s:.0f} s)'
            rc = -1
        print(output.rstrip())
        print(f'<== {label}: exit {rc}\n', flush=True)
        header = f'$ python {label}\n' if len(SCRIPT_RUNS.get(name, [[]])) > 1 or args else ''
        outputs.append(header + output.rstrip())
        code = code or rc
    return {'output': '\n\n'.join(outputs), 'code': code, 'wall_s': time.perf_counter() - t0}


def markdown_section(name: str, result: Dict[str, object]) -> str:
    """Format one script's BENCHMARKS.md section (between markers, for later merges)."""
    status = 'ok' if result['code'] == 0 else f'FAILED (exit {result["code"]})'
    when = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
    return (f'<!-- bench:{name} -->\n## `bench/{name}.py`\n\n'
            f'{status}, {result["wall_s"]:.0f} s, run {when}\n\n'
            f'```text\n{result["output"]}\n```\n\n<!-- /bench:{name} -->\n')


def ratios(sections: Dict[str, str]) -> List[tuple]:
    """Collect every ``ratio:`` line of every section."""
    found = []
    for name, text in sections.items():
        for line in text.splitlines():
            m = RATIO_LINE.match(line.strip())
            if m:
                found.append((name, m['what'], float(m['value'])))
    return found


def write_markdown(path: Path, sections: Dict[str, str], info: Dict[str, str]) -> None:
    """Write BENCHMARKS.md: machine, ratio summary, then one section per script."""
    lines = ['# Benchmarks', '',
             'Measured by `make bench` (`python bench/run_all.py`); every ratio below comes '
             'from one run of one script on the machine described here. Re-run on your '
             'machine before relying on a number.', '',
             'The node runs one torch thread (`torch_threads: 1`), and so do the timing '
             'benchmarks; their alternatives take turns call by call or round by round, '
             'report min / median / max and the load, and mark a ratio as noise when the '
             'medians differ by less than the spread. On a busy machine (load average above '
             'the core count) absolute times are inflated: compare within one run.', '',
             '## Machine', '', '| | |', '|---|---|']
    lines += [f'| {k} | {v} |' for k, v in info.items()]
    lines += ['', '## Ratios (summary)', '', '| script | ratio | value |', '|---|---|---|']
    lines += [f'| {n} | {what} | {value:.2f}x |' for n, what, value in ratios(sections)]
    lines.append('')
    body = '\n'.join(lines) + '\n' + ''.join(sections[n] for n in sorted(sections))
    path.write_text(body)


def main() -> int:
    """Run the benchmarks and write BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--only', nargs='+', default=None, help='run only these scripts')
    parser.add_argument('--skip', nargs='+', default=[], help='do not run these scripts')
    parser.add_argument('--out', type=Path, default=ROOT / 'BENCHMARKS.md')
    parser.add_argument('--timeout', type=float, default=1800.0, help='per script, seconds')
    parser.add_argument('--no-run', action='store_true',
                        help='only rewrite --out from the sections it already holds')
    args = parser.parse_args()
    names = [] if args.no_run else [n for n in discover() if n not in args.skip]
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f'unknown benchmark(s) {unknown}; found {names}')
        names = [n for n in names if n in args.only]
    sections = {}
    if args.out.exists():
        sections = {m['name']: m.group(0) for m in SECTION.finditer(args.out.read_text())}
    info = machine_info()  # the load average before the benchmarks add their own
    failed = []
    for name in names:
        result = run_one(name, args.timeout)
        sections[name] = markdown_section(name, result)
        if result['code'] != 0:
            failed.append(name)
    write_markdown(args.out, sections, info)
    print(f'wrote {args.out}' + (f'; FAILED: {failed}' if failed else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

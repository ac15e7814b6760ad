"""Run the benchmarks: ``python -m benchmarks [name ...]`` (all ``bench_*.py`` by default).

``soak`` runs only when named.  Each ``benchmarks/bench_<name>.py`` has a ``main()`` that measures its anchor
and its subject in the same run and prints the figures and their ratios.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback

import benchmarks


def available() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_") for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )


# Benchmarks that run only when named (``make bench BENCH_ARGS=soak``): the soak takes an hour.
OPT_IN = frozenset({"soak"})


def main(argv: list[str]) -> int:
    names = argv or [name for name in available() if name not in OPT_IN]
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
        return 2
    failed = []
    for name in names:
        print(f"\n=== benchmark: {name} ===", flush=True)
        started = time.perf_counter()
        try:
            importlib.import_module(f"benchmarks.bench_{name}").main()
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - started:.1f} s ===", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

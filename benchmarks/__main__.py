from __future__ import annotations

import importlib
import pkgutil
import shutil
import sys
import tempfile

import benchmarks


def main(argv: list[str]) -> int:
    names = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )
    chosen = argv[:1] or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; choose from: {', '.join(names)}", file=sys.stderr)
        return 2
    # Every temporary directory a benchmark makes (hubs of a gigabyte at 100,000 contacts,
    # sandbox state) goes under one scratch directory, removed when the run ends.
    scratch = tempfile.mkdtemp(prefix="contactsync-bench-")
    tempfile.tempdir = scratch
    try:
        for name in chosen:
            print(f"== {name} ==", flush=True)
            module = importlib.import_module(f"benchmarks.bench_{name}")
            module.main(argv[1:])
    finally:
        tempfile.tempdir = None
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

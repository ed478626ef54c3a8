"""Benchmark `proms score` against a bare csv-module pass over the same file.

Generates N rows over every bundled PROMIS short form (10% with missing answers), then times,
in the same run and as separate processes:
  baseline  read every row with csv.reader and write it back with csv.writer (plus six columns)
  score     `proms score INPUT --output OUTPUT`
and prints rows per second, the ratio score/baseline (target: at most 3x) and the peak memory
of each process at N/10 and N rows (target: flat in the number of rows).

    .venv/bin/python bench/score_bench.py [--rows 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proms.instruments.registry import bundled_registry
from proms.scoring.types import PromisForm

ROOT = Path(__file__).resolve().parent.parent
BASELINE = """
import csv, sys
with open(sys.argv[1], newline="", encoding="utf-8") as src, \\
        open(sys.argv[2], "w", newline="", encoding="utf-8") as dst:
    writer = csv.writer(dst, lineterminator="\\n")
    for row in csv.reader(src):
        writer.writerow([*row, "", "", "", "", "", ""])
"""


def promis_forms() -> list[PromisForm]:
    forms = [d.form() for d in bundled_registry()]
    return [form for form in forms if isinstance(form, PromisForm)]


def generate(path: Path, rows: int, seed: int) -> None:
    """Random answers over all PROMIS forms; 10% of rows miss one item or more."""
    rng = random.Random(seed)
    forms = promis_forms()
    columns = sorted({item for form in forms for item in form.item_ids})
    index = {item: i for i, item in enumerate(columns)}
    choices = {
        form.code: [(index[item], sorted(form.item_values[item])) for item in form.item_ids]
        for form in forms
    }
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["instrument", "id", *columns])
        for n in range(rows):
            form = forms[n % len(forms)]
            cells = [""] * len(columns)
            items = choices[form.code]
            for position, values in items:
                cells[position] = str(rng.choice(values))
            if rng.random() < 0.10:
                for position, _ in rng.sample(items, rng.randint(1, len(items) - 1)):
                    cells[position] = ""
            writer.writerow([form.code, f"r{n}", *cells])


def run(command: list[str]) -> tuple[float, int]:
    """Wall time in seconds and peak resident memory in KiB of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PROMS_ENV": "development"})
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[0]} failed with status {status}")
    return elapsed, usage.ru_maxrss


def measure(rows: int, seed: int, workdir: Path) -> dict[str, tuple[float, int]]:
    source = workdir / f"input-{rows}.csv"
    generate(source, rows, seed)
    proms = str(Path(sys.executable).with_name("proms"))
    results = {
        "baseline": run([sys.executable, "-c", BASELINE, str(source), str(workdir / "bare.csv")]),
        "score": run([proms, "score", str(source), "--output", str(workdir / "scored.csv")]),
    }
    source.unlink()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("PROMS_DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
        small = measure(args.rows // 10, args.seed, workdir)
        large = measure(args.rows, args.seed, workdir)
    base_s, base_kib = large["baseline"]
    score_s, score_kib = large["score"]
    print(
        f"proms score bench: {args.rows:,} rows over {len(promis_forms())} PROMIS forms, "
        f"10% incomplete"
    )
    print(f"  baseline (csv read+write): {base_s:7.2f} s  {args.rows / base_s:12,.0f} rows/s")
    print(f"  proms score:               {score_s:7.2f} s  {args.rows / score_s:12,.0f} rows/s")
    print(f"  ratio score/baseline:      {score_s / base_s:7.2f}x  (target <= 3x)")
    print(
        f"  peak memory, score:        {small['score'][1] / 1024:7.1f} MiB at {args.rows // 10:,} "
        f"rows, {score_kib / 1024:.1f} MiB at {args.rows:,} rows "
        f"(ratio {score_kib / small['score'][1]:.2f}; flat means about 1)"
    )
    print(
        f"  peak memory, baseline:     {small['baseline'][1] / 1024:7.1f} MiB, "
        f"{base_kib / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    main()

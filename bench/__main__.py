"""``python -m bench [--quick]``: run the benchmarks and write docs/benchmarks.md.

Run it with the project's interpreter (``.venv/bin/python -m bench``): borgwatch runs in-process for the
micro figures. borgmatic is installed from PyPI into ``bench/.work/venv`` on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench import micro, report
from bench.interleave import run_size, size_result_from_dict
from bench.machine import describe
from bench.variants import make_variants

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"


def kept_notes(out: Path) -> str:
    """The hand-written Notes section of the report: written once, in docs/benchmarks.md, and carried over."""
    text = out.read_text() if out.exists() else ""
    return text.split("\n## Notes\n", 1)[1].strip() if "\n## Notes\n" in text else ""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_borgmatic(skip: bool) -> str | None:
    if skip:
        return None
    exe = WORK / "venv" / "bin" / "borgmatic"
    if not exe.exists():
        log("installing borgmatic from PyPI into bench/.work/venv")
        subprocess.run([sys.executable, "-m", "venv", str(WORK / "venv")], check=True)
        subprocess.run([str(WORK / "venv" / "bin" / "pip"), "install", "-q", "borgmatic"], check=True)
    return str(exe)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10k files only, fewer rounds, replay up to 100k")
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=None,
                   help="comma-separated tree sizes [10000,100000; --quick: 10000]")
    p.add_argument("--first-reps", type=int, default=None, help="first-backup rounds [3]")
    p.add_argument("--steps", type=int, default=None, help="incremental rounds [5; --quick: 3]")
    p.add_argument("--seed", type=int, default=20240611)
    p.add_argument("--borg", default=str(ROOT / ".venv" / "bin" / "borg"))
    p.add_argument("--no-borgmatic", action="store_true")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--rerender", action="store_true",
                   help="measure nothing: rewrite --out from bench/.work/results.json (its Notes section is kept)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.rerender:
        return rerender(Path(args.out))
    sizes = args.sizes or ([10_000] if args.quick else [10_000, 100_000])
    first_reps = args.first_reps or (2 if args.quick else 3)
    steps = args.steps or (3 if args.quick else 5)
    replay_sizes = (10_000, 100_000) if args.quick else (10_000, 100_000, 1_000_000)
    borgwatch = shutil.which("borgwatch", path=str(Path(sys.executable).parent)) or "borgwatch"
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    started = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    # a wheel install ships borgwatch's bytecode; this editable one under PYTHONDONTWRITEBYTECODE=1 (the dev
    # shell's) would compile every module on every timed run instead
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "borgwatch")], check=True)
    borgmatic = ensure_borgmatic(args.no_borgmatic)
    machine = describe(args.borg, borgmatic)
    log(f"machine: {machine}")

    log("parser throughput")
    figures: dict = {"parser": micro.parser_throughput()}
    log(f"  {figures['parser']}")
    figures["startup"] = micro.startup(borgwatch)
    log(f"startup: {figures['startup']}")
    log(f"peak RSS replay {replay_sizes}")
    replay = micro.rss_replay(WORK / "replay", replay_sizes)
    log(f"  {replay}")

    results = []
    for files in sizes:
        run_dir = WORK / f"run{files}"
        variants = make_variants(run_dir, WORK / f"src{files}", args.borg, borgmatic)
        results.append(run_size(files, args.seed, WORK / f"src{files}", variants, first_reps, steps, log))
    machine["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    figures["notes"] = kept_notes(Path(args.out))
    total = time.monotonic() - started
    Path(args.out).write_text(report.render(machine, command.strip(), results, figures, replay, total))
    raw = {"machine": machine, "micro": {k: v for k, v in figures.items() if k != "notes"}, "replay": replay,
           "sizes": [asdict(r) for r in results], "command": command.strip(), "total_seconds": total,
           "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    (WORK / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    log(f"wrote {args.out} and {WORK / 'results.json'} in {total / 60:.1f} min")
    return 0


def rerender(out: Path) -> int:
    raw = json.loads((WORK / "results.json").read_text())
    sizes = [size_result_from_dict(d) for d in raw["sizes"]]
    figures = {**raw["micro"], "notes": kept_notes(out)}
    out.write_text(report.render(raw["machine"], raw["command"], sizes, figures, raw["replay"],
                                 raw["total_seconds"], generated=raw.get("generated")))
    log(f"rewrote {out} from {WORK / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python bench/rss_main.py OUT ARGS…`` = ``borgwatch ARGS…``, then borgwatch's own peak RSS (KiB) is
written to OUT. Used for every timed borgwatch run.

The peak is VmHWM of this process's address space, read at exit: it excludes the borg children, and
unlike ``getrusage(RUSAGE_SELF).ru_maxrss`` it does not inherit the high-water mark of the process that
spawned us (Linux carries ru_maxrss across fork/vfork + exec, so a big parent would inflate it).
"""

from __future__ import annotations

import sys


def peak_rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    out = sys.argv.pop(1)
    sys.argv[0] = "borgwatch"
    code: int | str | None = 0
    try:
        from borgwatch.entry import main as cli  # the console script's entry point

        code = cli()
    except SystemExit as exc:
        code = exc.code
    finally:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(str(peak_rss_kib()))
    return code if isinstance(code, int) else (0 if code is None else 1)


if __name__ == "__main__":
    sys.exit(main())

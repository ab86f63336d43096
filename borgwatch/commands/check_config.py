"""`borgwatch check-config`: load and validate the configuration, run nothing."""

from __future__ import annotations

import os
import sys

from borgwatch.borg.argv import dialect_warnings
from borgwatch.borg.version import detect_version, find_borg
from borgwatch.config.checks import deprecations
from borgwatch.config.load import load_config
from borgwatch.errors import UserError


def check_config_command(config_path: str | None) -> int:
    config = load_config(config_path)
    print(f"{config.source}: OK ({len(config.jobs)} job(s): {', '.join(config.jobs) or 'none'})")
    for line in deprecations(config.jobs):
        print(f"warning: {line}", file=sys.stderr)
    try:
        borg = find_borg(config.borg)
        version = detect_version(borg, {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
    except UserError as exc:  # the configuration is valid; only the dialect cannot be checked
        print(f"note: settings not checked against a borg version: {exc}", file=sys.stderr)
        return 0
    for name, job in config.jobs.items():
        for line in dialect_warnings(job, name, version):
            print(f"warning: {line}", file=sys.stderr)
    return 0

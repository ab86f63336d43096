"""Find borg and tell its version (decides the command dialect)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from borgwatch.errors import UserError


@dataclass(frozen=True)
class BorgVersion:
    major: int
    minor: int
    patch: int
    text: str

    @property
    def modern_exit_codes(self) -> bool:
        return (self.major, self.minor) >= (1, 4)


def find_borg(borg: str) -> str:
    path = shutil.which(borg)
    if path is None:
        raise UserError(f"borg binary {borg!r} not found: install borgbackup (apt install borgbackup, or "
                        "pip install 'borgwatch[borg]') or set borg = \"/path/to/borg\" in the config")
    return path


def detect_version(borg_path: str, env: dict[str, str]) -> BorgVersion:
    try:
        out = subprocess.run([borg_path, "--version"], capture_output=True, text=True, env=env,
                             stdin=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"cannot run {borg_path} --version ({exc}); check the borg installation") from None
    m = re.search(r"(\d+)\.(\d+)\.(\d+)(\S*)", out.stdout + out.stderr)
    if out.returncode != 0 or not m:
        raise UserError(f"{borg_path} --version failed (rc {out.returncode}); check the borg installation")
    version = BorgVersion(int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(0))
    if version.major != 1 or version.minor < 2:
        raise UserError(f"borg {version.text} is not supported: borgwatch needs borg 1.2 or 1.4 "
                        "(borg 2 is still beta)")
    return version

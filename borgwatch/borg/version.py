"""Find borg and tell its version (decides the command dialect)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from borgwatch.errors import UserError
from borgwatch.store.files import atomic_write, read_own_file


@dataclass(frozen=True)
class BorgVersion:
    major: int
    minor: int
    patch: int
    text: str


def find_borg(borg: str) -> str:
    path = shutil.which(borg)
    if path is None:
        raise UserError(f"borg binary {borg!r} not found: install borgbackup (apt install borgbackup, or "
                        "pip install 'borgwatch[borg]') or set borg = \"/path/to/borg\" in the config")
    return path


def detect_version(borg_path: str, env: dict[str, str], cache_dir: Path | None = None) -> BorgVersion:
    """``borg --version`` costs a borg start-up (0.3-0.5 s); the answer is cached per binary identity
    (real path, inode, size, mtime), so an upgrade of borg is noticed."""
    key = _identity(borg_path)
    cache = cache_dir / "borg-version.json" if cache_dir else None
    if cache is not None and key:
        raw = read_own_file(cache, 4096)  # another user's file (or a link to one) is never believed
        try:
            cached = json.loads(raw) if raw is not None else {}
            if cached.get("key") == key:
                return _checked(BorgVersion(*cached["version"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            pass
    version = _checked(_ask(borg_path, env))
    if cache is not None and key:
        body = json.dumps({"key": key, "version": [version.major, version.minor, version.patch, version.text]})
        with contextlib.suppress(OSError):
            atomic_write(cache, body.encode(), 0o644, durable=False)  # lost: asked again, once
    return version


def _identity(borg_path: str) -> str:
    try:
        real = os.path.realpath(borg_path)
        st = os.stat(real)
    except OSError:
        return ""
    return f"{real}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def _ask(borg_path: str, env: dict[str, str]) -> BorgVersion:
    try:
        out = subprocess.run([borg_path, "--version"], capture_output=True, text=True, env=env,
                             stdin=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"cannot run {borg_path} --version ({exc}); check the borg installation") from None
    m = re.search(r"(\d+)\.(\d+)\.(\d+)(\S*)", out.stdout + out.stderr)
    if out.returncode != 0 or not m:
        raise UserError(f"{borg_path} --version failed (rc {out.returncode}); check the borg installation")
    return BorgVersion(int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(0))


# The one borg 2 beta borgwatch is tested with. Repositories of one beta may be unreadable by the next
# and each beta changes options (b22 removed prune's --keep-last), so other betas are refused.
BORG2_TESTED = "2.0.0b23"


def _checked(version: BorgVersion) -> BorgVersion:
    if version.major == 2 and version.text == BORG2_TESTED:
        return version  # experimental
    if version.major == 2:
        raise UserError(f"borg {version.text} is not supported: borgwatch supports borg 2 only as the tested "
                        f"beta {BORG2_TESTED} (experimental; pip install borgbackup=={BORG2_TESTED}), or "
                        "borg 1.2 / 1.4")
    if version.major != 1 or version.minor < 2:
        raise UserError(f"borg {version.text} is not supported: borgwatch needs borg 1.2 or 1.4 "
                        f"(or borg {BORG2_TESTED}, experimental)")
    return version

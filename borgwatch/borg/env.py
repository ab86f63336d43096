"""Borg's environment: locale, exit-code mode, prompts answered 'no', passphrase source.

The passphrase never goes on a command line or into an output: a file is handed over as an inherited
file descriptor (BORG_PASSPHRASE_FD), a command as BORG_PASSCOMMAND, an env var name is resolved here.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from borgwatch.errors import UserError


@dataclass
class BorgEnv:
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()
    secrets: list[str] = field(default_factory=list)  # strings to redact from every output

    def close(self) -> None:
        for fd in self.pass_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pass_fds = ()


def build_env(
    *,
    passcommand: str | None = None,
    passphrase_file: str | None = None,
    passphrase_env: str | None = None,
    extra: dict[str, str] | None = None,
    base_dir: str | None = None,
    where: str = "job",
) -> BorgEnv:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORG_PASS")}
    env.update({
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "BORG_EXIT_CODES": "modern",
        "BORG_RELOCATED_REPO_ACCESS_IS_OK": "no",
        "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "no",
        "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING": "NO",
        "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING": "NO",
        "PYTHONUNBUFFERED": "1",
    })
    if base_dir:
        env["BORG_BASE_DIR"] = base_dir
    secrets: list[str] = []
    for value in (extra or {}).values():
        secrets.append(value)
    env.update(extra or {})
    result = BorgEnv(env, secrets=secrets)
    if passcommand:
        env["BORG_PASSCOMMAND"] = passcommand
        secrets.append(passcommand)
    elif passphrase_file:
        path = Path(passphrase_file)
        try:
            secret = path.read_text(encoding="utf-8").rstrip("\n")
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise UserError(f"{where}: cannot read passphrase_file {path}: {exc.strerror}; check the path "
                            "and that borgwatch runs as a user who may read it") from None
        secrets.append(secret)
        env["BORG_PASSPHRASE_FD"] = str(fd)
        result.pass_fds = (fd,)
    elif passphrase_env:
        secret = os.environ.get(passphrase_env)
        if secret is None:
            raise UserError(f"{where}: environment variable {passphrase_env} (passphrase_env) is not set; "
                            "export it or use passcommand / passphrase_file")
        env["BORG_PASSPHRASE"] = secret
        secrets.append(secret)
    elif os.environ.get("BORG_PASSPHRASE"):
        env["BORG_PASSPHRASE"] = os.environ["BORG_PASSPHRASE"]
        secrets.append(os.environ["BORG_PASSPHRASE"])
    elif os.environ.get("BORG_PASSCOMMAND"):
        env["BORG_PASSCOMMAND"] = os.environ["BORG_PASSCOMMAND"]
    return result

"""Checks across keys: what parses as the right type but would crash or mislead a run.

Job names become file names and label values; environment keys go into borg's environment; extra_args
go onto borg's command line next to the options borgwatch relies on; a repository URL goes onto borg's
command line, where every local user can read it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from borgwatch.errors import ConfigError
from borgwatch.redact import strip_url_credentials

MAX_NAME = 64
NAME_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME - 1}}}")
NAME_RULE = f"use 1-{MAX_NAME} letters, digits, '_', '.' and '-', starting with a letter or digit"
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
MAX_SHOWN = 80

# Options of borg create/prune/compact/check that take a value (the next argument unless given as
# --option=value); any other argument that does not start with "-" would be taken as a repository,
# archive or path.
_VALUE_OPTIONS = {
    "common": {"--debug-topic", "--lock-wait", "--umask", "--remote-path", "--remote-ratelimit",
               "--upload-ratelimit", "--remote-buffer", "--upload-buffer", "--debug-profile", "--rsh"},
    "create": {"--filter", "--stdin-name", "--stdin-user", "--stdin-group", "--stdin-mode", "--paths-delimiter",
               "-e", "--exclude", "--exclude-from", "--pattern", "--patterns-from", "--exclude-if-present",
               "--files-cache", "--files-changed", "--comment", "--timestamp", "-c", "--checkpoint-interval",
               "--checkpoint-volume", "--chunker-params", "-C", "--compression"},
    "prune": {"--keep-within", "--keep-last", "--keep-secondly", "--keep-minutely", "-H", "--keep-hourly",
              "-d", "--keep-daily", "-w", "--keep-weekly", "-m", "--keep-monthly", "-y", "--keep-yearly",
              "-c", "--checkpoint-interval", "-P", "--prefix", "-a", "--glob-archives"},
    "compact": {"--threshold"},
    "check": {"--max-duration", "-P", "--prefix", "-a", "--glob-archives", "--sort-by", "--first", "--last"},
}
_OWN = "borgwatch sets it and reads borg's output through it"
_REJECTED = {
    "common": {"--json": _OWN, "--log-json": _OWN, "--show-rc": _OWN,
               "--lock-wait": "set lock_wait instead",
               "-p": "borgwatch shows progress itself, on a terminal only",
               "--progress": "borgwatch shows progress itself, on a terminal only",
               "--critical": "it hides the warnings and errors borgwatch counts",
               "--error": "it hides the warnings borgwatch counts"},
    "create": {"--list": "borgwatch adds it when the dataset diff needs the file list",
               "--filter": "it hides file statuses the dataset diff counts",
               "-n": "borg creates no archive, but borgwatch would record one",
               "--dry-run": "borg creates no archive, but borgwatch would record one",
               "--paths-from-stdin": "borg's stdin is not connected under borgwatch",
               "--content-from-command": "borgwatch backs up paths; use `borgwatch exec` for this"},
    "prune": {"--list": "borgwatch adds it to count kept and pruned archives",
              "-a": "borgwatch selects the job's own archives; another selection can prune other jobs' archives",
              "--glob-archives": "borgwatch selects the job's own archives; another selection can prune other "
                                 "jobs' archives",
              "-P": "borgwatch selects the job's own archives; another selection can prune other jobs' archives",
              "--prefix": "borgwatch selects the job's own archives; another selection can prune other jobs' "
                          "archives",
              "-n": "borg prunes nothing, but borgwatch would count archives as pruned",
              "--dry-run": "borg prunes nothing, but borgwatch would count archives as pruned"},
    "compact": {},
    "check": {"--repair": "borg asks for a confirmation that borgwatch answers no; run `borg check --repair` "
                          "by hand"},
}


def shown(value: object) -> str:
    """A value for an error message: repr, URL passwords masked, at most MAX_SHOWN characters."""
    text = strip_url_credentials(repr(value))
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 1] + "…"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a job or repository name (it becomes file names and label values)."""
    return None if NAME_RE.fullmatch(name) else f"invalid name {shown(name)}; {NAME_RULE}"


def env_key_problem(key: str) -> str | None:
    if ENV_NAME_RE.fullmatch(key):
        return None
    return (f"{shown(key)} is not an environment variable name; use letters, digits and '_' "
            "(not starting with a digit)")


def hostname_problem(hostname: str) -> str | None:
    if HOSTNAME_RE.fullmatch(hostname):
        return None
    return (f"{shown(hostname)} is not a host name (it goes into archive names and labels); use letters, "
            "digits, '_', '.' and '-'")


def url_password_problem(repository: str) -> str | None:
    """A password in a repository URL ends up on borg's command line, visible to every local user."""
    try:
        password = urlsplit(repository).password if "://" in repository else None
    except ValueError:
        return None
    if not password:
        return None
    return ("the repository URL carries a password, which borg would show on its command line to every local "
            "user: remove it and use an ssh key (environment BORG_RSH) for the connection and "
            "passcommand/passphrase_file for the passphrase")


def extra_args_problem(stage: str, args: list[str]) -> str | None:
    """Why ``args`` cannot be appended to borg ``stage`` by borgwatch, or None."""
    takes_value = _VALUE_OPTIONS["common"] | _VALUE_OPTIONS[stage]
    rejected = {**_REJECTED["common"], **_REJECTED[stage]}
    longs = {o for o in takes_value | set(rejected) if o.startswith("--")}
    expect_value = False
    for arg in args:
        if expect_value:
            expect_value = False
            continue
        if arg == "--" or not arg.startswith("-") or arg == "-":
            return (f"{shown(arg)} is not an option: borg would take it as the repository, an archive or a "
                    "path; set repository/paths instead, and write option values as --option=value")
        if arg.startswith("--"):
            name, has_value, _ = arg.partition("=")
            if name in rejected:
                return f"{name} is not allowed here: {rejected[name]}"
            matches = [o for o in rejected if o.startswith("--") and o.startswith(name) and name not in longs]
            if matches:  # argparse accepts unambiguous abbreviations
                return f"{name} abbreviates {matches[0]}, which is not allowed here: {rejected[matches[0]]}"
            expect_value = name in takes_value and not has_value
            continue
        for i, char in enumerate(arg[1:], start=1):  # -np, -Czstd, -e PATTERN
            short = f"-{char}"
            if short in rejected:
                return f"{short} is not allowed here: {rejected[short]}"
            if short in takes_value:
                expect_value = i == len(arg) - 1
                break
    if expect_value:
        return f"{args[-1]} needs a value"
    return None


def extra_args_check(where: str, stage: str, args: list[str]) -> None:
    problem = extra_args_problem(stage, args)
    if problem:
        raise ConfigError(f"{where}: {problem}")


def deprecations(jobs: dict[str, Any]) -> list[str]:
    """Settings that still work but mean something else now (one line each, for `check-config`)."""
    return [f"jobs.{name}.dataset_diff = \"fast\" is deprecated: the exact diff costs what borg create costs "
            "now, and the run uses it; write \"exact\"" for name, job in jobs.items() if job.dataset_diff == "fast"]

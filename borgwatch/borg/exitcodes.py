"""Borg exit codes -> result class (1.2: 0/1/2/128+N; 1.4 modern and 2.0: specific codes)."""

from __future__ import annotations

import signal

SEVERITY = {"success": 0, "warning": 1, "error": 2, "interrupted": 3}


def classify(rc: int) -> str:
    """Order per borg: signal > error > warning > success."""
    if rc == 0:
        return "success"
    if rc >= 128 or rc < 0:
        return "interrupted"
    if rc == 1 or 100 <= rc <= 127:
        return "warning"
    return "error"


def signal_name(rc: int) -> str:
    num = rc - 128 if rc >= 128 else -rc
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def worst(*statuses: str) -> str:
    return max(statuses, key=lambda s: SEVERITY.get(s, 0))


def completed(rc: int) -> bool:
    """borg finished its work (possibly with warnings): its output can be used."""
    return classify(rc) in ("success", "warning")


def check_status(rc: int) -> str:
    """``borg check`` reports damage with rc 1, even in modern exit-code mode: that is an error."""
    return "error" if rc == 1 else classify(rc)


# --- what collect tells a user about a failed borg command (borg-dialect) ---

LOCK_TIMEOUT_RC = 73  # LockTimeout with modern exit codes (1.4 with BORG_EXIT_CODES=modern, and 2.0)

# borg msgid (suffix, see events.msgid_suffix) -> the remedy named after borg's own message
MSGID_REMEDIES = {
    "PassphraseWrong": "check passcommand / passphrase_file / passphrase_env of this repository",
    "NoPassphraseFailure": "set passcommand, passphrase_file or passphrase_env for this repository",
    "PasscommandFailure": "check that the passcommand of this repository works",
    "DoesNotExist": "check the repository path/URL",
    "CacheInitAbortedError": "first access to an unencrypted repository: add "
                             "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK = \"yes\" to its environment",
    "RepositoryAccessAborted": "the repository moved: add BORG_RELOCATED_REPO_ACCESS_IS_OK = \"yes\" to "
                               "its environment once",
}


def is_lock_timeout(rc: int, msgids: list[str]) -> bool:
    return rc == LOCK_TIMEOUT_RC or "LockTimeout" in msgids


def remedy(msgids: list[str]) -> str:
    """The remedy for the first msgid that has one, or ''."""
    return next((MSGID_REMEDIES[m] for m in msgids if m in MSGID_REMEDIES), "")

"""Agent-side tables: [pushgateway], per-job ping URLs and [repositories.NAME] for `borgwatch collect`."""

from __future__ import annotations

from dataclasses import dataclass

from borgwatch.config.fields import opt, required


@dataclass
class PushgatewayConfig:
    url: str = required("Pushgateway URL, e.g. http://pushgw:9091.", kind="secret-url")
    job: str = opt("borgwatch", "Value of the Pushgateway job label.")
    timeout: float = opt(5.0, "Seconds before a push is given up.", gt=0, max=3600)


@dataclass
class PingConfig:
    start: str | None = opt(None, "URL pinged when a run starts.", kind="secret-url")
    success: str | None = opt(None, "URL pinged (POST, summary as body) after a successful run.",
                              kind="secret-url")
    fail: str | None = opt(None, "URL pinged (POST, summary as body) after a failed run.",
                           kind="secret-url")
    timeout: float = opt(5.0, "Seconds before a ping is given up.", gt=0, max=3600)


@dataclass
class RepositoryConfig:
    repository: str = required("Borg repository to watch.", kind="secret-url")
    passcommand: str | None = opt(None, "Command printing the passphrase.", kind="secret-command")
    passphrase_file: str | None = opt(None, "File holding the passphrase.", kind="path")
    passphrase_env: str | None = opt(None, "Name of an environment variable holding the passphrase.")
    environment: dict[str, str] = opt({}, "Extra environment for borg.", kind="secret-values")
    lock_wait: int = opt(1, "Seconds to wait for the repository lock before skipping (a running backup "
                            "holds it; the previous values are kept).", min=0)
    timeout: int = opt(600, "Seconds before one borg command of a collection is stopped (hung ssh).", gt=0)

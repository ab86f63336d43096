"""`borgwatch check-config`: load and validate the configuration, run nothing."""

from __future__ import annotations

from borgwatch.config.load import load_config


def check_config_command(config_path: str | None) -> int:
    config = load_config(config_path)
    print(f"{config.source}: OK ({len(config.jobs)} job(s): {', '.join(config.jobs) or 'none'})")
    return 0

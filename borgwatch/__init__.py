"""borgwatch: wrap BorgBackup runs and publish what really happened."""

__version__ = "0.1.0"

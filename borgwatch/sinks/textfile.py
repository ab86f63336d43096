"""node_exporter textfile sink: one ``borgwatch-<job>.prom`` per job, replaced atomically.

At start only the run-start series change (in_progress=1, start time); the last run's values stay in
the file until the run ends, so dashboards never see a gap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from borgwatch.metrics.specs import SPECS, job_samples
from borgwatch.model import RunResult, SinkReport
from borgwatch.sinks.base import BaseSink, Phase
from borgwatch.store.files import read_own_file, remove_stale_temps

if TYPE_CHECKING:
    from borgwatch.metrics.exposition import FullSample

# A job's textfile is a few kB; a bigger one was not written by borgwatch and is not worth reading.
MAX_TEXTFILE_BYTES = 1024 * 1024

# borgwatch.metrics.exposition (prometheus_client) is imported when a file is written: the runner starts the
# sinks once borg is running, so that import overlaps borg's own start-up instead of preceding it


def textfile_path(textfile_dir: str | Path, job: str) -> Path:
    return Path(textfile_dir) / f"borgwatch-{job}.prom"


class TextfileSink(BaseSink):
    name = "textfile"
    phase = Phase.RECORD
    fatal = True  # without the file the run is invisible to Prometheus

    def describe_failure(self, exc: BaseException) -> str:
        if isinstance(exc, OSError):
            return (f"cannot write metrics to {self.config.textfile_dir}: {exc.strerror or exc}; create the "
                    "directory and make it writable for borgwatch's user, or set textfile_dir")
        return super().describe_failure(exc)

    @property
    def path(self) -> Path:
        return textfile_path(self.config.textfile_dir, self.job)

    def on_start(self, result: RunResult) -> None:
        from borgwatch.metrics.exposition import build_registry, with_labels, write_textfile

        remove_stale_temps(self.path)  # left by a killed run (the job's lock is held)
        fresh = with_labels(job_samples(result), backup_job=self.job)
        replaced = {name for name, _, _ in fresh}
        kept = [s for s in self._existing_samples() if s[0] not in replaced]
        write_textfile(self.path, build_registry([*fresh, *kept]))

    def on_finish(self, result: RunResult) -> SinkReport | None:
        from borgwatch.metrics.exposition import build_registry, with_labels, write_textfile

        write_textfile(self.path, build_registry(with_labels(job_samples(result), backup_job=self.job)))
        return None

    def _existing_samples(self) -> list[FullSample]:
        from prometheus_client.parser import text_string_to_metric_families

        # the textfile dir may be writable by others: a FIFO, a symlink to /dev/zero or to a root-only
        # file, or a hard link planted there must neither hang the run nor leak into the .prom
        data = read_own_file(self.path, MAX_TEXTFILE_BYTES)
        try:
            text = data.decode("utf-8") if data is not None else ""
        except UnicodeDecodeError:
            return []
        samples: list[FullSample] = []
        try:
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name in SPECS and s.labels.get("backup_job") == self.job:
                        samples.append((s.name, dict(s.labels), s.value))
        except ValueError:
            return []  # unparsable: start over with the fresh series only
        return samples

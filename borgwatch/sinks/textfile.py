"""node_exporter textfile sink: one ``borgwatch-<job>.prom`` per job, replaced atomically.

At start only the run-start series change (in_progress=1, start time); the last run's values stay in
the file until the run ends, so dashboards never see a gap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from borgwatch.metrics import SPECS, job_samples
from borgwatch.model import RunResult, SinkReport
from borgwatch.sinks.base import Sink

if TYPE_CHECKING:
    from borgwatch.exposition import FullSample

# borgwatch.exposition (prometheus_client) is imported when a file is written: the runner starts the
# sinks once borg is running, so that import overlaps borg's own start-up instead of preceding it


def textfile_path(textfile_dir: str | Path, job: str) -> Path:
    return Path(textfile_dir) / f"borgwatch-{job}.prom"


class TextfileSink(Sink):
    name = "textfile"

    @property
    def path(self) -> Path:
        return textfile_path(self.config.textfile_dir, self.job)

    def on_start(self, result: RunResult) -> None:
        from borgwatch.exposition import build_registry, with_labels, write_textfile

        fresh = with_labels(job_samples(result), backup_job=self.job)
        replaced = {name for name, _, _ in fresh}
        kept = [s for s in self._existing_samples() if s[0] not in replaced]
        write_textfile(self.path, build_registry([*fresh, *kept]))

    def on_finish(self, result: RunResult) -> SinkReport | None:
        from borgwatch.exposition import build_registry, with_labels, write_textfile

        write_textfile(self.path, build_registry(with_labels(job_samples(result), backup_job=self.job)))
        return None

    def _existing_samples(self) -> list[FullSample]:
        from prometheus_client.parser import text_string_to_metric_families

        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return []
        samples: list[FullSample] = []
        try:
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name in SPECS:
                        samples.append((s.name, dict(s.labels), s.value))
        except ValueError:
            return []  # unparsable: start over with the fresh series only
        return samples

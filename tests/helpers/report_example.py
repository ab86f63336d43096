"""Renders the example report in docs/report-example from the test's demo data (real Prometheus):
``.venv/bin/python tests/helpers/report_example.py docs/report-example``."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the helpers package

from helpers.report_prometheus import demo_server  # noqa: E402
from helpers.workspace import BORGWATCH  # noqa: E402


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = demo_server(Path(tmp))
        try:
            subprocess.run([BORGWATCH, "report", "--prometheus", server.url, *server.auth_args(), "--since",
                            str(server.since), "--until", str(server.until), "--output", out, "--pdf", "--json"],
                           check=True, stdout=subprocess.DEVNULL, timeout=300)
        finally:
            server.proc.terminate()
            server.proc.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1])

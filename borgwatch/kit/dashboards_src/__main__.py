"""``python -m borgwatch.kit.dashboards_src``: rewrite ``kit/dashboards/*.json`` from the dashboard modules."""

import os
import sys

try:
    from borgwatch.kit.dashboards_src.generate import main
except ModuleNotFoundError as exc:
    if exc.name != "grafana_foundation_sdk":
        raise
    print("borgwatch: cannot build the dashboards: grafana-foundation-sdk is not installed; install the "
          "development extra with `pip install -e '.[dashboards]'`", file=sys.stderr)
    sys.exit(os.EX_UNAVAILABLE)

main()

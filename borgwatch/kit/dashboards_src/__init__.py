"""The kit's Grafana dashboards (``kit/dashboards/*.json``), built with grafana-foundation-sdk: one module
per dashboard, what they share in ``common``, the file writer in ``generate``.

Development time only: the SDK comes with the ``dashboards`` extra (the ``test`` extra pulls it in), and
borgwatch itself serves the checked-in JSON without importing this package. After editing a dashboard
module, regenerate with ``python -m borgwatch.kit.dashboards_src`` (a test fails when the JSON files and
the modules disagree).
"""

"""`borgwatch report`: backup SLOs of a period from Prometheus' HTTP API as HTML + PNG (+ PDF) and JSON.

Needs the ``report`` extra (matplotlib, jinja2, requests); nothing else in borgwatch imports this package."""

"""Velocity's Grafana dashboards and Prometheus alerting artefacts, built as code.

`python -m velocity_dashboards` (or `make dashboards`) writes every generated file;
`--check` fails when a committed file differs from what the code produces. The layers:

- `model`: plain dataclasses for dashboards, rows, panels, targets and variables;
- `promql`: the standard label selector, Grafana-variable substitution and metric-name
  extraction (so tests can check PromQL with real tools);
- `rows/`: one module per dashboard row, each a function returning a `Row`;
- `catalog`: which rows make up which dashboard;
- `grafana`: turns the model into Grafana dashboard JSON;
- `rules`: reads the plain Prometheus rules file and wraps it in a PrometheusRule;
- `artifacts`: every generated file, keyed by its path in the repository.
"""

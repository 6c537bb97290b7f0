"""The committed dashboards and manifests are exactly what the generator produces."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from velocity_dashboards import catalog, grafana
from velocity_dashboards.__main__ import drifted, main
from velocity_dashboards.artifacts import artifacts
from velocity_dashboards.rules import RULES_FILE, SOURCE_FILE
from velocity_dashboards.settings import DEFAULT_RUNBOOK_BASE_URL

from tests.dashboards.conftest import REPO_ROOT


def test_committed_files_match_the_generator() -> None:
    assert drifted(REPO_ROOT) == [], "generated files are stale: run `make dashboards` and commit"


def test_drift_is_detected(tmp_path: Path) -> None:
    (tmp_path / SOURCE_FILE).parent.mkdir(parents=True)
    shutil.copy(REPO_ROOT / SOURCE_FILE, tmp_path / SOURCE_FILE)
    assert main(["--root", str(tmp_path)]) == 0
    assert (tmp_path / RULES_FILE).read_text() == (REPO_ROOT / RULES_FILE).read_text()
    assert main(["--root", str(tmp_path), "--check"]) == 0
    board = tmp_path / "dashboards" / catalog.cluster_dashboard().file_name
    board.write_text(board.read_text().replace("Requests", "Requets", 1))
    assert drifted(tmp_path) == [Path("dashboards") / board.name]
    assert main(["--root", str(tmp_path), "--check"]) == 1


def test_every_dashboard_has_the_standard_variables() -> None:
    for d in catalog.dashboards():
        rendered = grafana.render(d)
        names = [v["name"] for v in rendered["templating"]["list"]]
        assert names[0] == "datasource"
        if d.uid == "velocity-cluster":
            assert names[1:] == ["cluster", "namespace", "pod"]
        else:  # the operator's own namespace and pod
            assert names[1:] == ["namespace", "pod"]


def test_layout_has_no_overlaps_and_unique_ids() -> None:
    for d in catalog.dashboards():
        panels = grafana.render(d)["panels"]
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids))
        cells: set[tuple[int, int]] = set()
        for p in panels:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= grafana.GRID_WIDTH, p["title"]
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, f"{p['title']} overlaps another panel"
            cells |= mine


def test_configmap_carries_the_same_dashboards() -> None:
    files = artifacts(REPO_ROOT)
    configmap = files[Path("manifests/monitoring/grafana-dashboards.yaml")]
    for d in catalog.dashboards():
        board = json.loads(files[Path("dashboards") / d.file_name])
        assert board["uid"] == d.uid
        assert f"  {d.file_name}: |\n" in configmap


def test_runbook_base_is_one_generator_setting(tmp_path: Path) -> None:
    (tmp_path / SOURCE_FILE).parent.mkdir(parents=True)
    shutil.copy(REPO_ROOT / SOURCE_FILE, tmp_path / SOURCE_FILE)
    base = "https://wiki.example.com/velocity/runbooks"
    assert main(["--root", str(tmp_path), "--runbook-base-url", base]) == 0
    assert main(["--root", str(tmp_path), "--runbook-base-url", base, "--check"]) == 0
    assert main(["--root", str(tmp_path), "--check"]) == 1  # the default base differs
    rules = (tmp_path / RULES_FILE).read_text()
    assert f"runbook_url: {base}#velocityinstancedown" in rules and DEFAULT_RUNBOOK_BASE_URL not in rules
    for d in catalog.dashboards():
        board = json.loads((tmp_path / "dashboards" / d.file_name).read_text())
        assert [link["url"] for link in board["links"]] == [base]


def _stat_panels() -> list[dict[str, Any]]:
    return [p for d in catalog.dashboards() for p in grafana.render(d)["panels"] if p["type"] == "stat"]


def test_every_stat_panel_has_thresholds() -> None:
    stats = _stat_panels()
    assert len(stats) >= 14
    for p in stats:
        steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps and steps[0]["value"] is None, p["title"]


def test_overview_answers_is_it_healthy() -> None:
    overview = catalog.cluster_dashboard().rows[0]
    assert overview.title == "Overview"
    titles = [p.title for p in overview.panels]
    for wanted in ("Ready pods", "Ready / desired", "Primary present", "Latency p99", "Max replication lag",
                   "Writes refused", "Backup age", "Firing alerts"):
        assert wanted in titles
    ready = overview.panels[titles.index("Ready pods")]
    # Green only when every desired pod is ready: 2 of 3 is not green.
    steps = sorted((t.value for t in ready.thresholds if t.color == "green"), key=float)
    assert steps == [1] and ready.unit == "percentunit"
    assert "velocity_operator_cluster_desired_replicas" in ready.targets[0].expr

"""Alert rules: promtool-valid, unit-tested alert by alert, with a runbook each."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from velocity_dashboards.rules import RULES_FILE, SOURCE_FILE, RulesFileError, generated_groups, prometheus_rule, rules
from velocity_dashboards.settings import DEFAULT_RUNBOOK_BASE_URL, SettingsError, runbook_base_url

from tests.dashboards.conftest import REPO_ROOT, run_promtool

ALERTS_TEST = Path(__file__).with_name("alerts_test.yml")
RUNBOOKS = REPO_ROOT / "docs" / "runbooks.md"


def _alerts() -> list[str]:
    return [r.name for r in rules(REPO_ROOT / RULES_FILE) if r.is_alert]


def test_promtool_check_rules(promtool: str) -> None:
    res = run_promtool(promtool, "check", "rules", str(REPO_ROOT / RULES_FILE))
    assert res.returncode == 0, res.stdout + res.stderr


def test_prometheusrule_spec_is_a_valid_rules_file(promtool: str, tmp_path: Path) -> None:
    spec = yaml.safe_load((REPO_ROOT / "manifests/monitoring/prometheusrule.yaml").read_text())["spec"]
    assert spec == prometheus_rule(REPO_ROOT / RULES_FILE)["spec"]
    extracted = tmp_path / "from-prometheusrule.yml"
    extracted.write_text(json.dumps(spec))
    res = run_promtool(promtool, "check", "rules", str(extracted))
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_unit_tests_pass(promtool: str) -> None:
    res = run_promtool(promtool, "test", "rules", str(ALERTS_TEST))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_promtool_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    # The same tests against rules whose thresholds were loosened must fail: they pin behaviour.
    loose = tmp_path / "manifests/monitoring/velocity.rules.yml"
    loose.parent.mkdir(parents=True)
    loose.write_text((REPO_ROOT / RULES_FILE).read_text().replace("for: 2m", "for: 10m"))
    test = tmp_path / "tests/dashboards/alerts_test.yml"
    test.parent.mkdir(parents=True)
    test.write_text(ALERTS_TEST.read_text())
    res = run_promtool(promtool, "test", "rules", str(test))
    assert res.returncode != 0 and "VelocityInstanceDown" in res.stdout + res.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    doc = yaml.safe_load(ALERTS_TEST.read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts - firing == set(), "alerts without a test where they fire"
    assert alerts - quiet == set(), "alerts without a test where they stay quiet"
    assert (firing | quiet) - alerts == set(), "tests for alerts that do not exist"


def test_every_alert_has_a_runbook_section_and_link() -> None:
    text = RUNBOOKS.read_text()
    headings = set(re.findall(r"^## (\w+)$", text, re.MULTILINE))
    for r in yaml.safe_load((REPO_ROOT / RULES_FILE).read_text())["groups"]:
        for rule in r["rules"]:
            name = rule["alert"]
            assert name in headings, f"docs/runbooks.md has no '## {name}' section"
            # Absolute, so it resolves from Alertmanager and Grafana; GitHub's heading anchor.
            url = rule["annotations"]["runbook_url"]
            assert url == f"{DEFAULT_RUNBOOK_BASE_URL}#{name.lower()}"
            assert url.startswith("https://")
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}


def test_runbook_urls_come_from_one_configurable_base(tmp_path: Path) -> None:
    base = "https://runbooks.example.com/velocity.html"
    groups = generated_groups(REPO_ROOT / SOURCE_FILE, base)
    urls = [r["annotations"]["runbook_url"] for g in groups for r in g["rules"] if "alert" in r]
    assert urls and all(u.startswith(base + "#velocity") for u in urls)
    assert len(urls) == len(_alerts())
    # The source may not carry its own URL: there is one place that decides.
    doc = yaml.safe_load((REPO_ROOT / SOURCE_FILE).read_text())
    assert not [r for g in doc["groups"] for r in g["rules"] if "runbook_url" in r.get("annotations", {})]
    doc["groups"][0]["rules"][0]["annotations"]["runbook_url"] = "docs/runbooks.md#x"
    bad = tmp_path / "bad.rules.yml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(RulesFileError, match="runbook_url is generated"):
        generated_groups(bad, base)


@pytest.mark.parametrize("url", ["docs/runbooks.md", "/runbooks.md", "ftp://x/y", "https://x/r.md#frag"])
def test_runbook_base_must_be_absolute(url: str) -> None:
    with pytest.raises(SettingsError):
        runbook_base_url(url)
    assert runbook_base_url(None) == DEFAULT_RUNBOOK_BASE_URL

"""The observability pack, checked by Prometheus' own tool (promtool, from Debian's `prometheus` package):
both scrape configs and the rules are valid, every alert has a unit test and the unit tests pass, every
dashboard query is valid PromQL, and the pack names what the `local` stack deploys."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.prometheus import MAIN_CONFIG, PACK, REPLICAS_CONFIG, RULES, PackTargets, render_pack
from harness.program import stack_config

RULE_TESTS = PACK / "tests" / "hostscale.test.yml"
DASHBOARD = PACK / "grafana" / "hostscale.json"


def promtool(*args: str, cwd: Path = PACK) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:  # a failure, not a skip: CI must install it
        pytest.fail(
            "promtool is not on PATH: install Debian's `prometheus` package (apt-get install prometheus)"
        )
    return subprocess.run([path, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alerts() -> list[str]:
    groups = yaml.safe_load((PACK / RULES).read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


@pytest.mark.parametrize(
    "args",
    [("check", "config", MAIN_CONFIG), ("check", "config", REPLICAS_CONFIG), ("check", "rules", RULES),
     ("test", "rules", str(RULE_TESTS.relative_to(PACK)))],
    ids=["the main scrape config is valid", "the replica scraper's config is valid", "the rules are valid",
         "the rules' unit tests pass"],
)  # fmt: skip
def test_promtool_accepts_the_pack(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_configs_rendered_for_another_stack_are_valid(tmp_path: Path) -> None:
    files = render_pack(PackTargets("hs-1234", "127.0.0.1:18404", "127.0.0.1:19100", "127.0.0.1:19091"))
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    for name in (MAIN_CONFIG, REPLICAS_CONFIG):
        result = promtool("check", "config", name, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert sorted(set(alerts()) - tested) == []
    assert len(alerts()) >= 10


def test_the_rule_tests_fail_when_a_rule_is_broken(tmp_path: Path) -> None:
    """The unit tests can fail: with the stuck alert's threshold raised past the test's gap, they do."""
    broken = (
        (PACK / RULES)
        .read_text()
        .replace(
            "hostscale_autoscaler_last_tick_timestamp_seconds > 30",
            "hostscale_autoscaler_last_tick_timestamp_seconds > 3000",
        )
    )
    (tmp_path / "rules").mkdir()
    (tmp_path / RULES).write_text(broken)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    result = promtool("test", "rules", f"tests/{RULE_TESTS.name}", cwd=tmp_path)
    assert result.returncode == 1
    assert "alertname: HostscaleAutoscalerStuck" in result.stdout + result.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool has no offline query parser: each query, as a recording rule, goes through its rule checker.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{index}", "expr": expr} for index, expr in enumerate(dashboard_queries())
    ]}]}  # fmt: skip
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_shows_what_an_operator_watches() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    text = " ".join(dashboard_queries())
    for needle in ('kind="desired"', 'kind="ready"', "hostscale_autoscaler_vms", "hostscale:http_requests:rate1m",
                   "p95", "haproxy_backend_current_queue", "hostscale_autoscaler_scaling_actions_total"):  # fmt: skip
        assert needle in text, needle
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {"${datasource}"}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), ids


def _job(config: dict[str, Any], name: str) -> dict[str, Any]:
    job: dict[str, Any] = next(j for j in config["scrape_configs"] if j["job_name"] == name)
    return job


def test_the_pack_names_what_the_local_stack_deploys() -> None:
    raw = stack_config("local")
    prefix = raw["hostscale:host"]["name_prefix"]
    lb = raw["hostscale:load_balancer"]
    main = yaml.safe_load((PACK / MAIN_CONFIG).read_text())
    assert _job(main, "haproxy")["static_configs"] == [
        {"targets": [f"{lb['stats_bind']}:{lb['stats_port']}"]}
    ]
    assert _job(main, "autoscaler")["static_configs"] == [
        {"targets": [raw["hostscale:autoscaler"]["listen"]]}
    ]
    replicas = _job(yaml.safe_load((PACK / REPLICAS_CONFIG).read_text()), "app")
    sd = replicas["dockerswarm_sd_configs"]
    assert [(s["role"], s["port"], s["filters"]) for s in sd] == [
        ("tasks", 8000, [{"name": "service", "values": [f"{prefix}-app"]}])
    ]
    keep = {
        r["source_labels"][0]: r["regex"] for r in replicas["relabel_configs"] if r.get("action") == "keep"
    }
    assert keep == {
        "__meta_dockerswarm_task_desired_state": "running",
        "__meta_dockerswarm_network_name": f"{prefix}-web",
    }


def test_render_pack_puts_another_stacks_names_and_ports_in_place() -> None:
    files = render_pack(PackTargets("hs-1234", "127.0.0.1:18404", "127.0.0.1:19100", "127.0.0.1:19091", "5s"))
    main = yaml.safe_load(files[MAIN_CONFIG])
    assert main["global"]["evaluation_interval"] == "5s"
    assert main["global"]["external_labels"] == {"stack": "hs-1234"}
    assert [_job(main, job)["static_configs"][0]["targets"] for job in ("haproxy", "autoscaler", "replicas")] == [
        ["127.0.0.1:18404"], ["127.0.0.1:19100"], ["127.0.0.1:19091"]
    ]  # fmt: skip
    app = _job(yaml.safe_load(files[REPLICAS_CONFIG]), "app")
    assert app["dockerswarm_sd_configs"][0]["filters"] == [{"name": "service", "values": ["hs-1234-app"]}]
    assert "hs-1234-web" in [r.get("regex") for r in app["relabel_configs"]]
    assert "hostscale-" not in files[MAIN_CONFIG] + files[REPLICAS_CONFIG]
    assert files[RULES] == (PACK / RULES).read_text()

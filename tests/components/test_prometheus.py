"""hostscale:prometheus: the option that deploys the observability pack's Prometheus with the stack. Off by
default; when on, two containers on the host's loopback with the pack rendered for the stack; bad values are
refused with the key and the value named."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from components.config import ConfigError, load_stack_config
from harness.program import stack_config
from harness.recording import Recording, record_program


def with_prometheus(**settings: Any) -> dict[str, Any]:
    config = copy.deepcopy(stack_config("local"))
    config["hostscale:prometheus"] = settings
    return config


def load(config: dict[str, Any]) -> Any:
    return load_stack_config(lambda name: config.get(f"hostscale:{name}"))


@pytest.fixture(scope="module")
def deployed() -> Recording:
    return record_program(with_prometheus(enabled=True, port=19090, scraper_port=19091), "local")


def test_it_is_off_by_default() -> None:
    config = load(stack_config("local"))
    assert (config.prometheus.enabled, config.prometheus.port, config.prometheus.scraper_port) == (
        False,
        9090,
        9091,
    )
    run = record_program(stack_config("local"), "local")
    assert [name for name in run.resources if "prometheus" in name] == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"enabled": "yes"}, "hostscale:prometheus.enabled must be true or false, got 'yes'"),
        ({"enabled": True, "port": 70000}, "hostscale:prometheus.port must be at most 65535, got 70000"),
        ({"enabled": True, "port": 8080},
         "hostscale:prometheus.port is 8080, the same host port as hostscale:load_balancer.http_port"),
        ({"enabled": True, "scraper_port": 9090},
         "hostscale:prometheus.scraper_port is 9090, the same host port as hostscale:prometheus.port"),
    ],
    ids=["enabled is not a boolean", "a port out of range", "its port is the load balancer's",
         "the scraper on the main Prometheus's port"],
)  # fmt: skip
def test_bad_settings_are_refused_naming_key_and_value(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(with_prometheus(**settings))
    assert str(error.value) == message


def test_a_port_clash_does_not_matter_while_it_is_off() -> None:
    assert load(with_prometheus(enabled=False, port=8080)).prometheus.enabled is False


def test_the_main_prometheus_listens_on_loopback_in_the_hosts_network(deployed: Recording) -> None:
    main = deployed.resources["prometheus-main"].inputs
    assert main["name"] == "hostscale-prometheus"
    assert main["networkMode"] == "host"
    assert "--web.listen-address=127.0.0.1:19090" in main["command"]
    assert [m["type"] for m in main["mounts"]] == ["volume"]
    assert "ports" not in main or not main["ports"]


def test_the_replica_scraper_is_on_the_web_network_published_on_loopback_only(deployed: Recording) -> None:
    scraper = deployed.resources["prometheus-replicas"].inputs
    assert scraper["name"] == "hostscale-prometheus-replicas"
    assert [p["ip"] for p in scraper["ports"]] == ["127.0.0.1"]
    assert [(p["internal"], p["external"]) for p in scraper["ports"]] == [(9090, 19091)]
    assert [m["source"] for m in scraper["mounts"]] == ["/var/run/docker.sock"]
    assert len(scraper["networksAdvanced"]) == 1


def test_the_uploaded_pack_names_the_stacks_targets(deployed: Recording) -> None:
    uploads = {u["file"]: u["content"] for u in deployed.resources["prometheus-main"].inputs["uploads"]}
    main = yaml.safe_load(uploads["/etc/hostscale/prometheus/prometheus.yml"])
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in main["scrape_configs"]}
    assert targets == {
        "haproxy": ["127.0.0.1:8404"], "autoscaler": ["127.0.0.1:9100"], "replicas": ["127.0.0.1:19091"],
    }  # fmt: skip
    assert "/etc/hostscale/prometheus/rules/hostscale.yml" in uploads
    assert deployed.outputs["prometheus_url"] == "http://127.0.0.1:19090"

"""The observability pack (observability/) for one stack: its scrape configs with the stack's names and ports,
and, with hostscale:prometheus.enabled, its Prometheus servers deployed with the stack.

The pack's files are written for the `local` stack (prefix "hostscale", HAProxy's metrics on 127.0.0.1:8404,
the autoscaler on 127.0.0.1:9100, the replica scraper on 127.0.0.1:9091); `render_pack` puts another stack's
names and ports in their place, structurally (YAML in, YAML out), so the rules and the dashboard stay as shipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker
import yaml

from components.autoscaler import socket_group
from components.settings import StackConfig

PACK = Path(__file__).resolve().parent.parent / "observability"
MAIN_CONFIG = "prometheus.yml"
REPLICAS_CONFIG = "prometheus-replicas.yml"
RULES = "rules/hostscale.yml"
# Where the replica scraper's Prometheus listens inside its container (published on the host's loopback).
SCRAPER_PORT = 9090


@dataclass(frozen=True)
class PackTargets:
    """What the pack's scrape configs name, for one stack."""

    name_prefix: str  # hostscale:host.name_prefix: the app service is <prefix>-app on <prefix>-web
    haproxy_metrics: str  # HOST:PORT of HAProxy's /metrics on the host
    autoscaler: str  # HOST:PORT of the autoscaler's API on the host
    replicas_scraper: str  # HOST:PORT where the replica scraper is published on the host
    evaluation_interval: str = "15s"


def _job(config: dict[str, Any], name: str) -> dict[str, Any]:
    job: dict[str, Any] = next(j for j in config["scrape_configs"] if j["job_name"] == name)
    return job


def _dump(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)


def render_pack(targets: PackTargets) -> dict[str, str]:
    """The pack's files for one stack: {relative path: content}, laid out as observability/ is."""
    main = yaml.safe_load((PACK / MAIN_CONFIG).read_text())
    main["global"]["evaluation_interval"] = targets.evaluation_interval
    main["global"]["external_labels"]["stack"] = targets.name_prefix
    for job, target in (
        ("haproxy", targets.haproxy_metrics),
        ("autoscaler", targets.autoscaler),
        ("replicas", targets.replicas_scraper),
    ):
        _job(main, job)["static_configs"] = [{"targets": [target]}]

    replicas = yaml.safe_load((PACK / REPLICAS_CONFIG).read_text())
    app = _job(replicas, "app")
    app["dockerswarm_sd_configs"][0]["filters"] = [
        {"name": "service", "values": [f"{targets.name_prefix}-app"]}
    ]
    for relabel in app["relabel_configs"]:
        if relabel.get("source_labels") == ["__meta_dockerswarm_network_name"]:
            relabel["regex"] = f"{targets.name_prefix}-web"
    return {
        MAIN_CONFIG: _dump(main),
        REPLICAS_CONFIG: _dump(replicas),
        RULES: (PACK / RULES).read_text(),
    }


CONFIG_DIR = "/etc/hostscale/prometheus"
DOCKER_SOCKET = "/var/run/docker.sock"


def pack_targets(config: StackConfig) -> PackTargets:
    """The pack's targets for a stack: HAProxy's metrics and the autoscaler's API where the host publishes them."""
    lb, autoscaler = config.load_balancer, config.autoscaler
    listen = "127.0.0.1" if autoscaler.listen_host == "0.0.0.0" else autoscaler.listen_host  # noqa: S104
    return PackTargets(
        name_prefix=config.host.name_prefix,
        haproxy_metrics=f"{lb.stats_bind}:{lb.stats_port}",
        autoscaler=f"{listen}:{autoscaler.listen_port}",
        replicas_scraper=f"127.0.0.1:{config.prometheus.scraper_port}",
    )


@dataclass
class PrometheusArgs:
    name_prefix: str
    image: str
    config: StackConfig
    web_network: docker.Network
    depends_on: list[pulumi.Resource]


class Prometheus(pulumi.ComponentResource):
    """hostscale:prometheus.enabled: the pack's two Prometheus servers, on the host's loopback only.

    The main one runs in the host's network namespace (HAProxy's metrics and the autoscaler's API are published
    on the host's loopback) and keeps its history on a named volume; the replica scraper runs on the web
    network, where it reaches every replica, and reads the Swarm's tasks through the Docker socket (its group
    only, as the autoscaler does)."""

    url: str
    main: docker.Container
    scraper: docker.Container

    def __init__(self, name: str, args: PrometheusArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:Prometheus", name, None, opts)
        settings = args.config.prometheus
        uploads = [
            docker.ContainerUploadArgs(file=f"{CONFIG_DIR}/{path}", content=content)
            for path, content in render_pack(pack_targets(args.config)).items()
        ]
        # Fixed names and host ports: a replacement cannot be created next to the old container (see autoscaler.py).
        child = pulumi.ResourceOptions(parent=self, depends_on=args.depends_on, delete_before_replace=True)
        self.scraper = docker.Container(
            f"{name}-replicas",
            name=f"{args.name_prefix}-prometheus-replicas",
            image=args.image,
            command=[
                f"--config.file={CONFIG_DIR}/{REPLICAS_CONFIG}",
                f"--web.listen-address=:{SCRAPER_PORT}",
                "--storage.tsdb.retention.time=1h",  # the main Prometheus keeps the history
            ],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.web_network.name)],
            ports=[
                docker.ContainerPortArgs(
                    internal=SCRAPER_PORT, external=settings.scraper_port, ip="127.0.0.1"
                )
            ],
            mounts=[docker.ContainerMountArgs(target=DOCKER_SOCKET, source=DOCKER_SOCKET, type="bind")],
            group_adds=[socket_group(DOCKER_SOCKET)],
            uploads=uploads,
            restart="unless-stopped",
            opts=child,
        )
        data = docker.Volume(
            f"{name}-data",
            name=f"{args.name_prefix}-prometheus-data",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.main = docker.Container(
            f"{name}-main",
            name=f"{args.name_prefix}-prometheus",
            image=args.image,
            command=[
                f"--config.file={CONFIG_DIR}/{MAIN_CONFIG}",
                f"--web.listen-address=127.0.0.1:{settings.port}",
            ],
            network_mode="host",
            mounts=[docker.ContainerMountArgs(target="/prometheus", source=data.name, type="volume")],
            uploads=uploads,
            restart="unless-stopped",
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*args.depends_on, self.scraper], delete_before_replace=True
            ),
        )
        self.url = f"http://127.0.0.1:{settings.port}"
        self.register_outputs({"url": self.url})

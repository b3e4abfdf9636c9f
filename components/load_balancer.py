"""HAProxy on the host: a container on the app's overlay network (never the database's), published on the
addresses the operator chose (loopback by default), with its config rendered from the stack settings."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.haproxy_cfg import HAProxySettings, render_haproxy_cfg
from components.settings import LoadBalancerConfig

FRONTEND_PORT = 8080  # inside the container
METRICS_PORT = 8404


@dataclass
class LoadBalancerArgs:
    name_prefix: str
    image: str
    settings: LoadBalancerConfig
    web_network: docker.Network
    app_service_name: str
    app_port: int
    slots: int  # the autoscaler's max replicas: every replica must find a server slot
    depends_on: list[pulumi.Resource]


class LoadBalancer(pulumi.ComponentResource):
    config_text: str
    url: str
    stats_url: str
    metrics_url: str
    container: docker.Container

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:LoadBalancer", name, None, opts)
        s = args.settings
        self.config_text = render_haproxy_cfg(
            HAProxySettings(
                backend_host=f"tasks.{args.app_service_name}",
                backend_port=str(args.app_port),
                slots=str(args.slots),
                server_maxconn=str(s.server_maxconn),
                queue_timeout_s=str(s.queue_timeout_s),
                queue_max=str(s.queue_max),
                # Inside its own network namespace; what the host exposes is decided by the published ports.
                frontend_bind=f":{FRONTEND_PORT}",
                metrics_bind=f":{METRICS_PORT}",
            )
        )
        self.container = docker.Container(
            f"{name}-haproxy",
            name=f"{args.name_prefix}-haproxy",
            image=args.image,
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.web_network.name)],
            ports=[
                docker.ContainerPortArgs(internal=FRONTEND_PORT, external=s.http_port, ip=s.http_bind),
                docker.ContainerPortArgs(internal=METRICS_PORT, external=s.stats_port, ip=s.stats_bind),
            ],
            uploads=[docker.ContainerUploadArgs(file="/etc/haproxy/haproxy.cfg", content=self.config_text)],
            restart="unless-stopped",
            # A changed file or image replaces a container (the provider's ForceNew); the new one cannot be
            # created next to the old (its fixed name and its published ports are taken), so the old one goes first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on, delete_before_replace=True),
        )
        self.url = f"http://{s.http_bind}:{s.http_port}"
        self.stats_url = f"http://{s.stats_bind}:{s.stats_port}/stats"
        self.metrics_url = f"http://{s.stats_bind}:{s.stats_port}/metrics"
        self.register_outputs({"url": self.url, "stats_url": self.stats_url, "metrics_url": self.metrics_url})

"""The app tier: a replicated Swarm service with dnsrr endpoints, which HAProxy discovers through DNS.

Pulumi owns the service; the autoscaler owns its replica count, so `pulumi up` ignores changes to it and
never fights the autoscaler.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.database import password_file
from components.settings import AppConfig

# The one property the autoscaler writes.
REPLICAS_PROPERTY = "mode.replicated.replicas"


@dataclass
class AppTierArgs:
    name_prefix: str
    image: pulumi.Input[str]
    settings: AppConfig
    web_network: docker.Network
    db_network: docker.Network
    db_service_name: str
    db_secret: docker.Secret
    # Lab: replicas run on the worker VMs, never on the manager, at most this many per worker (its capacity:
    # tasks beyond it stay pending until the autoscaler powers on another VM). None: the local stack.
    per_worker: int | None
    depends_on: list[pulumi.Resource]


class AppTier(pulumi.ComponentResource):
    service_name: str
    service: docker.Service

    def __init__(self, name: str, args: AppTierArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:AppTier", name, None, opts)
        settings = args.settings
        self.service_name = f"{args.name_prefix}-app"
        self.service = docker.Service(
            f"{name}-service",
            name=self.service_name,
            task_spec=docker.ServiceTaskSpecArgs(
                container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                    image=args.image,
                    env={"DB_HOST": args.db_service_name, "PORT": str(settings.port)},
                    secrets=[password_file(args.db_secret)],
                    stop_grace_period=f"{settings.stop_grace_s}s",
                    healthcheck=liveness_check(settings.port),
                ),
                networks_advanceds=[
                    docker.ServiceTaskSpecNetworksAdvancedArgs(id=args.web_network.id),
                    docker.ServiceTaskSpecNetworksAdvancedArgs(id=args.db_network.id),
                ],
                placement=docker.ServiceTaskSpecPlacementArgs(
                    constraints=["node.role==worker"] if args.per_worker else [],
                    max_replicas=args.per_worker,
                ),
                resources=docker.ServiceTaskSpecResourcesArgs(
                    limits=docker.ServiceTaskSpecResourcesLimitsArgs(
                        nano_cpus=int(settings.cpu_limit * 1e9), memory_bytes=settings.memory_mb * 2**20
                    )
                ),
                restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(condition="any", delay="1s"),
            ),
            mode=docker.ServiceModeArgs(
                replicated=docker.ServiceModeReplicatedArgs(replicas=settings.initial_replicas)
            ),
            endpoint_spec=docker.ServiceEndpointSpecArgs(mode="dnsrr"),
            # New tasks start (and pass their health check) before old ones stop; a failed update rolls back.
            update_config=docker.ServiceUpdateConfigArgs(
                parallelism=1, order="start-first", delay="1s", monitor="10s", failure_action="rollback"
            ),
            rollback_config=docker.ServiceRollbackConfigArgs(
                parallelism=1, order="start-first", delay="1s", monitor="10s"
            ),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=args.depends_on, ignore_changes=[REPLICAS_PROPERTY]
            ),
        )
        self.register_outputs({"service_name": self.service_name})


def liveness_check(port: int) -> docker.ServiceTaskSpecContainerSpecHealthcheckArgs:
    """The image's own probe, stated in the spec so the policy pack and a reader see it.

    Swarm's health check answers "is this process hung?": an unhealthy task is killed and replaced, so it must
    never fire on a replica that is merely busy. HAProxy's own check decides who gets traffic
    (components/haproxy_cfg.py), and its per-replica maxconn keeps a replica's backlog short enough that
    /healthz answers within seconds. So a probe may take 10 s, only ten misses in a row (about two minutes
    without an answer) mark a replica unhealthy, and a slow start (a VM under software emulation) has two
    minutes. The interval stays 1 s because Swarm publishes a task in DNS, where HAProxy finds it, only after
    its first passing check, and engines before 25.0 run the first check one interval after the start.
    """
    return docker.ServiceTaskSpecContainerSpecHealthcheckArgs(
        tests=["CMD", "bash", "-c", _probe(port)],
        interval="1s",
        timeout="10s",
        retries=10,
        start_period="120s",
    )


def _probe(port: int) -> str:
    # bash's /dev/tcp: no interpreter start per probe (a Python probe timed out on CPU-saturated replicas).
    return (
        f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3"
        " && head -n1 <&3 | grep -q ' 200 '"
    )

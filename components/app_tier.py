"""The app tier: a replicated Swarm service with dnsrr endpoints, which HAProxy discovers through DNS.

Pulumi owns the service; the autoscaler owns its replica count. `ignore_changes` cannot keep that count: for an
ignored property Pulumi sends the input recorded in its state (the initial count), and the Docker provider's
update sends the whole service spec, so any update (a new image) would reset the count the autoscaler set.
So the program reads the live count when it runs and declares that (docs/pulumi-program.md#the-replica-count).
"""

from __future__ import annotations

from dataclasses import dataclass

import docker as docker_sdk
import pulumi
import pulumi_docker as docker

from components.database import password_file
from components.haproxy_cfg import drain_detection_s
from components.settings import AppConfig
from components.swarm import ADMITTED_CONSTRAINT


def live_replica_count(service_name: str) -> int | None:
    """The replica count Swarm holds for the service now (the autoscaler's), None when there is no such service
    yet (a first `up`, or an engine that is not a Swarm manager yet), from the engine pulumi-docker talks to
    (DOCKER_HOST, else the local socket)."""
    client = docker_sdk.from_env()
    try:
        if not client.info()["Swarm"].get("ControlAvailable"):
            return None
        try:
            spec = client.services.get(service_name).attrs["Spec"]
        except docker_sdk.errors.NotFound:
            return None
        replicated = spec.get("Mode", {}).get("Replicated")
        if replicated is None:
            raise ValueError(f"Swarm service {service_name} exists but is not replicated: {spec.get('Mode')}")
        return int(replicated.get("Replicas", 1))
    finally:
        client.close()


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
    replicas: int  # what this run declares: the live count of a service that exists, else the initial one
    service: docker.Service

    def __init__(self, name: str, args: AppTierArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hostscale:index:AppTier", name, None, opts)
        settings = args.settings
        self.service_name = f"{args.name_prefix}-app"
        live = live_replica_count(self.service_name)
        self.replicas = settings.initial_replicas if live is None else live
        self.service = docker.Service(
            f"{name}-service",
            name=self.service_name,
            task_spec=docker.ServiceTaskSpecArgs(
                container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                    image=args.image,
                    env={
                        "DB_HOST": args.db_service_name,
                        "PORT": str(settings.port),
                        # Stated, not left to the app's default: the config checks it against max_connections.
                        "DB_POOL_MAX_SIZE": str(settings.db_pool_max_size),
                        "SERVED_BY_HEADER": "true" if settings.served_by_header else "false",
                        **drain_env(settings.stop_grace_s),
                    },
                    secrets=[password_file(args.db_secret)],
                    stop_grace_period=f"{settings.stop_grace_s}s",
                    healthcheck=liveness_check(settings.port, image_probe=settings.liveness_probe == "image"),
                ),
                networks_advanceds=[
                    docker.ServiceTaskSpecNetworksAdvancedArgs(id=args.web_network.id),
                    docker.ServiceTaskSpecNetworksAdvancedArgs(id=args.db_network.id),
                ],
                placement=docker.ServiceTaskSpecPlacementArgs(
                    constraints=["node.role==worker", ADMITTED_CONSTRAINT] if args.per_worker else [],
                    max_replicas=args.per_worker,
                ),
                resources=docker.ServiceTaskSpecResourcesArgs(
                    limits=docker.ServiceTaskSpecResourcesLimitsArgs(
                        nano_cpus=int(settings.cpu_limit * 1e9), memory_bytes=settings.memory_mb * 2**20
                    )
                ),
                restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(condition="any", delay="1s"),
            ),
            mode=docker.ServiceModeArgs(replicated=docker.ServiceModeReplicatedArgs(replicas=self.replicas)),
            endpoint_spec=docker.ServiceEndpointSpecArgs(mode="dnsrr"),
            # New tasks start (and pass their health check) before old ones stop; a failed update rolls back.
            update_config=docker.ServiceUpdateConfigArgs(
                parallelism=1, order="start-first", delay="1s", monitor="10s", failure_action="rollback"
            ),
            rollback_config=docker.ServiceRollbackConfigArgs(
                parallelism=1, order="start-first", delay="1s", monitor="10s"
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.register_outputs({"service_name": self.service_name})


def drain_env(stop_grace_s: int) -> dict[str, str]:
    """How a replica stops (app/server.py): after SIGTERM it keeps serving while /healthz answers 503, long
    enough for HAProxy's check to take it out of the pool (on a worker VM, Swarm's removal of the task from DNS
    reaches HAProxy on the manager by gossip, later than the SIGTERM), then finishes its in-flight requests,
    all within Swarm's stop grace period, after which Swarm kills it. A replica that stopped accepting while
    HAProxy still sent it requests would fail them: writes are not retried once sent (components/haproxy_cfg.py).
    """
    grace = min(drain_detection_s() + 1, max(0, stop_grace_s - 2))
    timeout = min(300, max(1, stop_grace_s - grace - 1))  # 300: app/settings.py's bound
    return {"SHUTDOWN_GRACE_SECONDS": str(grace), "SHUTDOWN_TIMEOUT_SECONDS": str(timeout)}


def liveness_check(
    port: int, image_probe: bool = False
) -> docker.ServiceTaskSpecContainerSpecHealthcheckArgs:
    """The liveness probe's timing, and for the sample app its command, stated in the spec.

    Swarm's health check answers "is this process hung?": an unhealthy task is killed and replaced, so it must
    never fire on a replica that is merely busy. HAProxy's own check decides who gets traffic
    (components/haproxy_cfg.py), and its per-replica maxconn keeps a replica's backlog short enough that
    /healthz answers within seconds. So a probe may take 10 s, only ten misses in a row (about two minutes
    without an answer) mark a replica unhealthy, and a slow start (a VM under software emulation) has two
    minutes. The interval stays 1 s because Swarm publishes a task in DNS, where HAProxy finds it, only after
    its first passing check, and engines before 25.0 run the first check one interval after the start.

    image_probe (the operator's own image, hostscale:app.image): the command is the image's own HEALTHCHECK.
    Only the image knows what it carries (bash, busybox's wget, curl, its own binary); any command named here
    fails forever in some image (bash is not in alpine, busybox or distroless). An empty test is the engine's
    "inherit the image's": the timing above still comes from this spec (docs/byo-image.md).
    """
    return docker.ServiceTaskSpecContainerSpecHealthcheckArgs(
        tests=[] if image_probe else ["CMD", "bash", "-c", _probe(port)],
        interval="1s",
        timeout="10s",
        retries=10,
        start_period="120s",
    )


def _probe(port: int) -> str:
    # The sample app's image has bash: /dev/tcp needs no interpreter start per probe (a Python probe timed out
    # on CPU-saturated replicas).
    return (
        f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3"
        " && head -n1 <&3 | grep -q ' 200 '"
    )

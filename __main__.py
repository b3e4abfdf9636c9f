"""hostscale: a self-scaling web tier on one physical host.

Deploys, from the typed stack config (components/config.py):
- the Swarm bootstrap on the host (manager) and two overlay networks: web (HAProxy <-> app), db (app <-> Postgres);
- the images, built on the host by scripts/build-images;
- Postgres as a service pinned to the manager, its password a Pulumi secret delivered as a Docker secret file;
- the app as a replicated dnsrr service (the autoscaler owns its replica count: each run declares the live one);
- HAProxy on the host, published on loopback by default;
- the autoscaler, with its policy file rendered from the same validated config;
- a readiness step last: the deployment finishes only once requests through HAProxy succeed;
- in the lab stacks: per hypervisor host a libvirt storage pool, VM network and base image; the manager's image
  registry (the workers pull the app image from it); and worker VMs, spread over the hosts, that join the
  Swarm; the warm-pool VMs are parked after their first boot and the autoscaler powers them on and off.
"""

import pulumi

from components.app_tier import AppTier, AppTierArgs
from components.autoscaler import Autoscaler, AutoscalerArgs, remote_virsh_rules
from components.config import load_stack_config
from components.database import Database, DatabaseArgs
from components.haproxy_cfg import BACKEND
from components.hypervisor import Hypervisor, HypervisorArgs, VmPool, VmPoolArgs
from components.images import BuiltImage, BuiltImageArgs
from components.load_balancer import LoadBalancer, LoadBalancerArgs
from components.prometheus import Prometheus, PrometheusArgs
from components.readiness import Readiness, ReadinessArgs, Target
from components.registry import Registry, RegistryArgs
from components.swarm import Swarm, SwarmArgs

settings = pulumi.Config("hostscale")
config = load_stack_config(settings.get_object)
prefix = config.host.name_prefix

built = [
    "postgres",
    "haproxy",
    "autoscaler",
    *(["registry"] if config.vms else []),
    *(["prometheus"] if config.prometheus.enabled else []),
]
images = {name: BuiltImage(name, BuiltImageArgs(name)) for name in built}
if config.app.image is None:
    images["app"] = BuiltImage("app", BuiltImageArgs("app"))
app_image: pulumi.Input[str] = config.app.image or images["app"].tag
app_built = [images["app"].build] if "app" in images else []

hypervisors: list[Hypervisor] = []
if config.vms:
    # One host keeps the plain names (hypervisor-pool, ...); several are told apart by their config names.
    several = len(config.vms.hosts) > 1
    hypervisors = [
        Hypervisor(
            f"hypervisor-{host.name}" if several else "hypervisor", HypervisorArgs(prefix, host, config.vms)
        )
        for host in config.vms.hosts
    ]
# The Swarm manager's own hypervisor: its VM network's gateway is where every worker joins and pulls.
hypervisor = hypervisors[0] if hypervisors else None
registry = None
if config.vms and hypervisor:
    # Workers cannot pull from the internet: the app image goes through the manager's own registry.
    registry = Registry(
        "registry",
        RegistryArgs(
            prefix, images["registry"].tag, config.vms, [images["registry"].build, hypervisor.network]
        ),
    )
    app_image = registry.publish("app-image", str(app_image), depends_on=app_built)
swarm = Swarm(
    "swarm",
    SwarmArgs(prefix, config.host.advertise_addr),
    # The manager advertises on the VM network's gateway, which exists once libvirt made the network.
    pulumi.ResourceOptions(depends_on=[hypervisor.network] if hypervisor else []),
)
database = Database(
    "database",
    DatabaseArgs(
        name_prefix=prefix,
        image=images["postgres"].tag,
        settings=config.database,
        network=swarm.db_network,
        password=settings.get_secret("db_password"),
        depends_on=[images["postgres"].build, swarm.init],  # a Docker secret needs the Swarm
        ready_timeout_s=config.app.ready_timeout_s,
    ),
)
app = AppTier(
    "app",
    AppTierArgs(
        name_prefix=prefix,
        image=app_image,
        settings=config.app,
        web_network=swarm.web_network,
        db_network=swarm.db_network,
        db_service_name=database.service_name,
        db_secret=database.secret,
        per_worker=config.vms.replicas_per_vm if config.vms else None,
        # Replicas start (or move to a new secret) once the role's password is the secret's.
        depends_on=[*app_built, database.role_password],
    ),
)
load_balancer = LoadBalancer(
    "load-balancer",
    LoadBalancerArgs(
        name_prefix=prefix,
        image=images["haproxy"].tag,
        settings=config.load_balancer,
        web_network=swarm.web_network,
        app_service_name=app.service_name,
        app_port=config.app.port,
        slots=config.autoscaler.policy.max_replicas,
        depends_on=[images["haproxy"].build],
    ),
)
vms = None
if config.vms and hypervisor and registry:
    vms = VmPool(
        "vms",
        VmPoolArgs(
            prefix,
            config.vms,
            hypervisors,
            registry.pull_address,
            app_image,
            depends_on=[swarm],
        ),
    )
    pulumi.export("vm_names", vms.names)
    pulumi.export("vm_addresses", vms.addresses)
autoscaler = Autoscaler(
    "autoscaler",
    AutoscalerArgs(
        name_prefix=prefix,
        image=images["autoscaler"].tag,
        settings=config.autoscaler,
        app_service_name=app.service_name,
        haproxy_metrics_url=load_balancer.metrics_url,
        # With VMs, it starts once every worker has joined and the warm pool is parked.
        depends_on=[
            images["autoscaler"].build,
            app.service,
            load_balancer.container,
            *(vms.joins if vms else []),
        ],
        vms=config.vms,
        vm_names=vms.names if vms else [],
    ),
)
if config.vms is not None and any(host.over_ssh for host in config.vms.hosts):
    # Each remote hypervisor's settings file for the autoscaler key's forced command (docs/security.md).
    pulumi.export("virsh_gate_settings", remote_virsh_rules(config.vms, vms.names if vms else []))
readiness = Readiness(
    "readiness",
    ReadinessArgs(
        Target(
            url=load_balancer.url,
            path="/healthz",  # what every app image answers (README: bringing your own app image)
            stats_url=load_balancer.stats_url,
            backend=BACKEND,
            # The replicas a new service starts with (fewer when the autoscaler has the tier smaller now).
            wanted=min(config.app.initial_replicas, app.replicas),
        ),
        timeout_s=config.app.ready_timeout_s,
        # Run again whenever what serves changed: the app's image or secret, or the HAProxy container.
        triggers=[app_image, database.secret.name, load_balancer.container.id],
        # In the lab stacks replicas run only on admitted workers: the tier can serve once the VMs joined.
        depends_on=[app.service, load_balancer.container, *(vms.joins if vms else [])],
    ),
)
if config.prometheus.enabled:
    # The observability pack's Prometheus (observability/, docs/observability.md), on the host's loopback.
    prometheus = Prometheus(
        "prometheus",
        PrometheusArgs(
            prefix,
            images["prometheus"].tag,
            config,
            swarm.web_network,
            depends_on=[images["prometheus"].build, autoscaler.container, load_balancer.container],
        ),
    )
    pulumi.export("prometheus_url", prometheus.url)
pulumi.export("url", load_balancer.url)
pulumi.export("stats_url", load_balancer.stats_url)
pulumi.export("metrics_url", load_balancer.metrics_url)
pulumi.export("autoscaler_status_url", autoscaler.status_url)
pulumi.export("app_service", app.service_name)

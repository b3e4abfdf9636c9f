"""hostscale: a self-scaling web tier on one physical host.

Deploys, from the typed stack config (components/config.py):
- the Swarm bootstrap on the host (manager) and two overlay networks: web (HAProxy <-> app), db (app <-> Postgres);
- the images, built on the host by scripts/build-images;
- Postgres as a service pinned to the manager, its password a Pulumi secret delivered as a Docker secret file;
- the app as a replicated dnsrr service (the autoscaler owns its replica count);
- HAProxy on the host, published on loopback by default;
- the autoscaler, with its policy file rendered from the same validated config;
- in the lab stack: libvirt storage pool, NAT network, base image and worker VMs that join the Swarm.
"""

import pulumi

from components.app_tier import AppTier, AppTierArgs
from components.autoscaler import Autoscaler, AutoscalerArgs
from components.config import load_stack_config
from components.database import Database, DatabaseArgs
from components.hypervisor import Hypervisor, HypervisorArgs, VmPool, VmPoolArgs
from components.images import BuiltImage, BuiltImageArgs
from components.load_balancer import LoadBalancer, LoadBalancerArgs
from components.swarm import Swarm, SwarmArgs

settings = pulumi.Config("hostscale")
config = load_stack_config(settings.get_object)
prefix = config.host.name_prefix

images = {name: BuiltImage(name, BuiltImageArgs(name)) for name in ("postgres", "haproxy", "autoscaler")}
if config.app.image is None:
    images["app"] = BuiltImage("app", BuiltImageArgs("app"))
app_image = config.app.image or images["app"].tag

hypervisor = Hypervisor("hypervisor", HypervisorArgs(prefix, config.vms)) if config.vms else None
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
        depends_on=[images["postgres"].build],
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
        on_workers=config.vms is not None,
        depends_on=[images["app"].build] if "app" in images else [],
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
autoscaler = Autoscaler(
    "autoscaler",
    AutoscalerArgs(
        name_prefix=prefix,
        image=images["autoscaler"].tag,
        settings=config.autoscaler,
        app_service_name=app.service_name,
        haproxy_metrics_url=load_balancer.metrics_url,
        depends_on=[images["autoscaler"].build, app.service, load_balancer.container],
    ),
)
if config.vms and hypervisor:
    vms = VmPool(
        "vms",
        VmPoolArgs(prefix, config.vms, hypervisor, swarm.join_token, depends_on=[swarm]),
    )
    pulumi.export("vm_names", vms.names)
    pulumi.export("vm_addresses", vms.addresses)

pulumi.export("url", load_balancer.url)
pulumi.export("stats_url", load_balancer.stats_url)
pulumi.export("metrics_url", load_balancer.metrics_url)
pulumi.export("autoscaler_status_url", autoscaler.status_url)
pulumi.export("app_service", app.service_name)

"""The Pulumi program for both real stack files, under Pulumi's mock runtime: what each stack declares.

Every failure message names the resource it is about.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
import yaml

from autoscaler.settings import load_settings
from harness.program import stack_config
from harness.recording import FAKE_DIGEST, FAKE_JOIN_TOKEN, FAKE_PASSWORD, Recording, record_program

STACKS = ["local", "lab", "lab-emulated", "multihost"]


@pytest.fixture(scope="module", params=STACKS)
def stack(request: pytest.FixtureRequest) -> tuple[str, Recording]:
    return request.param, record_program(stack_config(request.param), request.param)


@pytest.fixture(scope="module")
def local() -> Recording:
    return record_program(stack_config("local"), "local")


@pytest.fixture(scope="module")
def lab() -> Recording:
    return record_program(stack_config("lab"), "lab")


def service(run: Recording, name: str) -> dict[str, Any]:
    return run.resources[name].inputs


def test_components_use_one_type_namespace_named_after_their_class(stack: tuple[str, Recording]) -> None:
    _, run = stack
    components = {name: r.type for name, r in run.resources.items() if r.type.startswith("hostscale:")}
    classes = {
        type(value).__name__
        for value in run.namespace.values()
        if isinstance(value, pulumi.ComponentResource)
    }
    for name, typ in components.items():
        assert typ.split(":")[-1] in classes | {"BuiltImage"}, (
            f"{name}: type token {typ} names no component class"
        )


def test_every_resource_has_a_component_parent(stack: tuple[str, Recording]) -> None:
    _, run = stack
    for name, declared in run.resources.items():
        if declared.type.startswith(("pulumi:pulumi:Stack", "hostscale:")):
            continue
        assert "hostscale:index:" in declared.parent, f"{name} ({declared.type}) is not inside a component"


def test_postgres_is_never_published_and_only_on_the_db_network(stack: tuple[str, Recording]) -> None:
    _, run = stack
    postgres = service(run, "database-service")
    assert postgres["endpointSpec"] == {"mode": "dnsrr"}, "database-service: must have no VIP and no ports"
    networks = [n["id"] for n in postgres["taskSpec"]["networksAdvanceds"]]
    assert networks == ["swarm-db-id"], f"database-service: networks {networks}"
    assert postgres["taskSpec"]["placement"]["constraints"] == ["node.role==manager"], "database-service"


def test_haproxy_joins_the_web_network_only_and_publishes_on_loopback(stack: tuple[str, Recording]) -> None:
    _, run = stack
    haproxy = service(run, "load-balancer-haproxy")
    web_name = service(run, "swarm-web")["name"]
    assert [n["name"] for n in haproxy["networksAdvanced"]] == [web_name], "load-balancer-haproxy: networks"
    assert {(p["internal"], p["ip"]) for p in haproxy["ports"]} == {(8080, "127.0.0.1"), (8404, "127.0.0.1")}


def test_db_network_is_not_attachable_and_web_is(stack: tuple[str, Recording]) -> None:
    _, run = stack
    assert service(run, "swarm-db")["attachable"] is False, "swarm-db"
    assert service(run, "swarm-web")["attachable"] is True, "swarm-web"


def test_a_new_app_service_starts_with_the_initial_replica_count(stack: tuple[str, Recording]) -> None:
    """No service yet (tests/components/conftest.py). No ignore_changes either: Pulumi would resend the initial
    count recorded in its state on every update (tests/components/test_app_tier.py has the live count)."""
    name, run = stack
    assert run.resources["app-service"].ignore_changes == [], "app-service"
    initial = stack_config(name)["hostscale:app"]["initial_replicas"]
    assert service(run, "app-service")["mode"]["replicated"]["replicas"] == initial, (
        "app-service: initial replicas"
    )


def test_app_service_is_dnsrr_with_limits_rollback_and_both_networks(stack: tuple[str, Recording]) -> None:
    _, run = stack
    app = service(run, "app-service")
    assert app["endpointSpec"] == {"mode": "dnsrr"}, "app-service"
    assert app["updateConfig"]["order"] == "start-first", "app-service"
    assert app["updateConfig"]["failureAction"] == "rollback", "app-service"
    assert app["taskSpec"]["resources"]["limits"]["memoryBytes"] == 256 * 2**20, "app-service"
    assert sorted(n["id"] for n in app["taskSpec"]["networksAdvanceds"]) == ["swarm-db-id", "swarm-web-id"]


def test_secrets_stay_secret(stack: tuple[str, Recording]) -> None:
    _, run = stack
    assert "data" in run.resources["database-password"].secret_inputs, (
        "database-password: data must be secret"
    )
    assert run.is_secret(run.namespace["database"].secret.data), (
        "database-password: data output must be secret"
    )
    vms = run.namespace["vms"]
    if vms is not None:
        assert run.is_secret(vms.join_token), "vms-join-token must be secret"
    for name, declared in run.resources.items():
        if name == "database-generated-password":  # where it is born: the provider marks its result secret
            continue
        text = json.dumps(declared.inputs)
        assert FAKE_PASSWORD not in text, f"{name} carries the database password in plain text"


def test_no_secret_travels_in_an_environment_variable(stack: tuple[str, Recording]) -> None:
    _, run = stack
    for name in ("app-service", "database-service"):
        env = service(run, name)["taskSpec"]["containerSpec"].get("env", {})
        assert not any("PASSWORD" in key and not key.endswith("_FILE") for key in env), f"{name}: {env}"
        assert service(run, name)["taskSpec"]["containerSpec"]["secrets"][0]["fileName"] == "db_password", (
            name
        )


def gate_settings(run: Recording) -> dict[str, Any]:
    """The gate's settings file as the component uploads it."""
    uploads = {u["file"]: u["content"] for u in service(run, "autoscaler-gate")["uploads"]}
    settings: dict[str, Any] = json.loads(uploads["/etc/hostscale/gate.json"])
    return settings


def test_the_autoscaler_holds_no_docker_or_libvirt_socket_and_reaches_them_through_the_gate(
    stack: tuple[str, Recording],
) -> None:
    name, run = stack
    autoscaler, gate = service(run, "autoscaler-container"), service(run, "autoscaler-gate")
    binds = {m["source"] for m in autoscaler["mounts"] if m["type"] == "bind"}
    assert not binds & {"/var/run/docker.sock", "/var/run/libvirt/libvirt-sock"}, f"{name}: {binds}"
    assert [m["target"] for m in autoscaler["mounts"] if m["type"] == "volume"] == ["/run/hostscale/gate"]
    assert "DOCKER_HOST=unix:///run/hostscale/gate/docker.sock" in autoscaler["envs"]
    assert {m["target"]: m["type"] for m in gate["mounts"]}["/var/run/docker.sock"] == "bind"
    assert (gate["networkMode"], gate["entrypoints"]) == ("none", ["python3", "-m", "autoscaler.gate"])
    for container in (autoscaler, gate):
        assert container["capabilities"] == {"drops": ["ALL"]}
        assert container["securityOpts"] == ["no-new-privileges:true"]
    settings = gate_settings(run)
    assert settings["service"] == settings_file(run)["service"]
    fleet = settings_file(run)["fleet"]
    assert settings["worker_nodes"] == [vm["name"] for vm in (fleet["vms"] if fleet else [])]
    local = [vm["name"] for vm in (fleet["vms"] if fleet else []) if vm["libvirt_uri"] == "qemu:///system"]
    assert settings["libvirt_domains"] == local
    assert ("HOSTSCALE_LIBVIRT_GATE=/run/hostscale/gate/libvirt.sock" in autoscaler["envs"]) == bool(local)


def settings_file(run: Recording) -> dict[str, Any]:
    """The autoscaler's settings file as the component uploads it."""
    uploads = {u["file"]: u["content"] for u in service(run, "autoscaler-container")["uploads"]}
    settings: dict[str, Any] = json.loads(uploads["/etc/hostscale/autoscaler.json"])
    return settings


def test_autoscaler_settings_file_carries_the_validated_stack_policy(stack: tuple[str, Recording]) -> None:
    name, run = stack
    settings = settings_file(run)
    expected = {k: v for k, v in stack_config(name)["hostscale:autoscaler"].items() if k != "listen"}
    assert settings["policy"] == expected, "autoscaler-container: policy in the settings file"
    assert load_settings(settings).policy.max_replicas == expected["replicas"]["max"]
    assert settings["listen"] == "127.0.0.1:9100", "autoscaler-container: API on loopback"
    assert settings["service"] == service(run, "app-service")["name"], "autoscaler-container: scales the app"
    assert settings["haproxy"] == {"metrics_url": "http://127.0.0.1:8404/metrics", "backend": "app"}
    command = service(run, "autoscaler-container")["command"]
    assert command == ["--settings", "/etc/hostscale/autoscaler.json"], "autoscaler-container: command"
    assert service(run, "autoscaler-container")["networkMode"] == "host", "autoscaler-container"


def test_haproxy_has_a_server_slot_for_every_replica_the_autoscaler_may_run(
    stack: tuple[str, Recording],
) -> None:
    name, run = stack
    cfg = service(run, "load-balancer-haproxy")["uploads"][0]["content"]
    max_replicas = stack_config(name)["hostscale:autoscaler"]["replicas"]["max"]
    app_name = service(run, "app-service")["name"]
    assert f"server-template app- {max_replicas} tasks.{app_name}:8000 " in cfg, "load-balancer-haproxy"


def test_images_are_built_by_the_project_builder_and_tagged_by_content(stack: tuple[str, Recording]) -> None:
    _, run = stack
    builds = run.of_type("command:local:Command")
    for image in ("app", "postgres", "haproxy", "autoscaler"):
        create = builds[f"{image}-build"].inputs["create"]
        assert create == f"./scripts/build-images {image}", f"{image}-build: {create}"
    tag = run.namespace["images"]["app"].tag
    assert tag.startswith("hostscale/app:"), tag
    if run.namespace["config"].vms is None:  # the lab stacks pull it from the manager's registry
        assert service(run, "app-service")["taskSpec"]["containerSpec"]["image"] == tag, "app-service: image"


def test_local_stack_has_no_vms_and_advertises_on_loopback(local: Recording) -> None:
    assert not [n for n, r in local.resources.items() if r.type.startswith("libvirt:")]
    assert "127.0.0.1" in local.resources["swarm-init"].inputs["create"], "swarm-init"
    assert settings_file(local)["fleet"] is None, "autoscaler-container: no warm pool without VMs"
    assert service(local, "app-service")["taskSpec"]["placement"].get("constraints", []) == [], "app-service"


def test_lab_stack_declares_three_vms_that_all_boot_once_and_one_warm_vm_parked(lab: Recording) -> None:
    domains = lab.of_type("libvirt:index/domain:Domain")
    assert sorted(domains) == ["vms-0", "vms-1", "vms-2"]
    # Every VM makes its first boot at up; the warm one is then parked by its join step.
    assert [domains[f"vms-{i}"].inputs["running"] for i in range(3)] == [True, True, True]
    for name, domain in domains.items():
        assert domain.inputs["type"] == "kvm", f"{name}: domain type"
        assert domain.ignore_changes == ["running"], f"{name}: the autoscaler owns power state"
    joins = lab.of_type("command:local:Command")
    creates = [joins[f"vms-{i}-join"].inputs["create"] for i in range(3)]
    assert creates == [
        "./scripts/vm-join --uri qemu:///system --vm hslab-worker-0",
        "./scripts/vm-join --uri qemu:///system --vm hslab-worker-1",
        "./scripts/vm-join --uri qemu:///system --vm hslab-worker-2 --park suspended",
    ]
    assert joins["vms-2-join"].inputs["delete"] == "docker node rm --force hslab-worker-2"


def test_lab_app_image_goes_through_the_managers_registry_by_digest(lab: Recording) -> None:
    image = service(lab, "app-service")["taskSpec"]["containerSpec"]["image"]
    tag = lab.namespace["images"]["app"].tag
    assert image == tag.replace("hostscale/", "10.77.0.1:5000/hostscale/", 1) + "@" + FAKE_DIGEST
    publish = lab.resources["app-image-publish"].inputs["create"]
    assert f"docker push -q 127.0.0.1:5000/{tag}" in publish, "pushes go to loopback"
    assert publish.endswith(
        f"docker push 127.0.0.1:5000/{tag} | sed -n 's/.*digest: \\(sha256:[0-9a-f]\\{{64\\}}\\).*/\\1/p'"
    ), "prints the digest the registry stored for this push"


def test_lab_workers_pull_from_a_read_only_registry_and_pushes_stay_on_loopback(lab: Recording) -> None:
    push, pull = lab.resources["registry-registry"].inputs, lab.resources["registry-pull-registry"].inputs
    assert [(p["ip"], p["external"]) for p in push["ports"]] == [("127.0.0.1", 5000)]
    assert [(p["ip"], p["external"]) for p in pull["ports"]] == [("10.77.0.1", 5000)]
    assert pull["command"] == ["docker-registry", "serve", "/etc/docker/registry/read-only.yml"]
    assert [m["readOnly"] for m in pull["mounts"]] == [True]
    assert push["mounts"][0]["source"] == pull["mounts"][0]["source"] == "hslab-registry", "one storage"
    placement = service(lab, "app-service")["taskSpec"]["placement"]
    assert placement["maxReplicas"] == 4, "a worker holds replicas_per_vm app tasks"
    fleet = settings_file(lab)["fleet"]
    assert [vm["name"] for vm in fleet["vms"]] == ["hslab-worker-0", "hslab-worker-1", "hslab-worker-2"]
    assert fleet["replicas_per_vm"] == 4


def test_lab_vms_cloud_init_joins_the_swarm_on_the_manager(lab: Recording) -> None:
    disks = lab.of_type("libvirt:index/cloudInitDisk:CloudInitDisk")
    assert len(disks) == 3
    for name, disk in disks.items():
        assert "userData" in disk.secret_inputs, (
            f"{name}: user data carries the join token: it must be secret"
        )
        user_data = disk.inputs["userData"]
        assert user_data.startswith("#cloud-config\n"), name
        doc = yaml.safe_load(user_data)
        files = {f["path"]: f for f in doc["write_files"]}
        assert files["/run/hostscale/swarm-join-token"]["content"].strip() == FAKE_JOIN_TOKEN, name
        assert files["/run/hostscale/swarm-join-token"]["permissions"] == "0600", name
        joins = [cmd for cmd in doc["runcmd"] if "swarm-join" in " ".join(cmd)]
        assert joins, f"{name}: no swarm join"
        assert "10.77.0.1:2377" in joins[0], f"{name}: joins {joins[0]}"
        assert FAKE_JOIN_TOKEN not in " ".join(joins[0]), f"{name}: the token must not be on a command line"
    assert lab.is_secret(lab.namespace["vms"].join_token)


@pytest.mark.parametrize("step", ["vms-join-token", "vms-rotate-join-token"])
def test_the_steps_that_handle_the_join_token_log_nothing(lab: Recording, step: str) -> None:
    # pulumi-command logs a command's stdout and stderr unless told not to: the token would be in `up`'s
    # output and the CI logs.
    assert lab.resources[step].inputs["logging"] == "none", step


def test_the_join_token_is_rotated_once_every_worker_joined_and_read_again_for_new_ones(
    lab: Recording,
) -> None:
    names = lab.namespace["vms"].names
    read, rotate = lab.resources["vms-join-token"], lab.resources["vms-rotate-join-token"]
    assert read.inputs["create"] == "docker swarm join-token -q worker"
    assert rotate.inputs["create"] == "docker swarm join-token --rotate -q worker > /dev/null"
    assert read.inputs["triggers"] == rotate.inputs["triggers"] == names, (
        "a new VM: read it again, rotate again"
    )
    assert sorted(rotate.depends_on) == sorted(f"vms-{i}-join" for i in range(len(names))), "after every join"
    for name, disk in lab.of_type("libvirt:index/cloudInitDisk:CloudInitDisk").items():
        assert disk.ignore_changes == ["userData"], f"{name}: a new token would replace a VM that has joined"


def test_the_local_stack_never_reads_a_join_token(local: Recording) -> None:
    assert not [name for name in local.resources if "join-token" in name]


def test_lab_app_replicas_run_on_workers_only(lab: Recording) -> None:
    assert service(lab, "app-service")["taskSpec"]["placement"]["constraints"] == [
        "node.role==worker",
        "node.labels.dev.hostscale.admitted==true",
    ], "only workers the manager admitted by node ID: a node joining with a leaked token gets no task"
    assert "10.77.0.1" in lab.resources["swarm-init"].inputs["create"], (
        "swarm-init advertises on the VM network"
    )


def test_lab_disks_are_copy_on_write_over_the_base_image(lab: Recording) -> None:
    for name, volume in lab.of_type("libvirt:index/volume:Volume").items():
        if name == "hypervisor-base":
            assert volume.inputs["source"].endswith(".qcow2"), name
        else:
            assert volume.inputs["baseVolumeId"] == "hypervisor-base-id", name


def test_exports_name_every_endpoint(stack: tuple[str, Recording]) -> None:
    name, run = stack
    load_balancer = run.namespace["load_balancer"]
    assert (load_balancer.url, load_balancer.metrics_url) == (
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8404/metrics",
    ), name
    assert run.namespace["autoscaler"].status_url == "http://127.0.0.1:9100/status"
    if name == "lab":
        assert run.resolve(run.namespace["vms"].addresses) == {
            f"hslab-worker-{i}": ["10.77.0.10"] for i in range(3)
        }


def test_emulated_domains_get_a_smaller_translation_cache_and_kvm_domains_do_not(lab: Recording) -> None:
    emulated = record_program(stack_config("lab-emulated"), "lab-emulated")
    for name, domain in emulated.of_type("libvirt:index/domain:Domain").items():
        assert domain.inputs["type"] == "qemu", name
        assert '<tb-cache unit="MiB">256</tb-cache>' in domain.inputs["xml"]["xslt"], name
        assert domain.inputs["kernel"] == "/var/lib/hostscale/vm-image/vmlinuz", name
        assert domain.inputs["cmdlines"] == [
            {"root": "LABEL=hostscale-root"},
            {"_": "rw"},
            {"console": "ttyS0"},
        ]
    for name, domain in lab.of_type("libvirt:index/domain:Domain").items():
        assert "xml" not in domain.inputs, name


@pytest.fixture(scope="module")
def multihost() -> Recording:
    return record_program(stack_config("multihost"), "multihost")


HOSTS = {
    "hv1": "qemu:///system",
    "hv2": "qemu+ssh://hostscale@192.168.50.12/system",
    "hv3": "qemu+ssh://hostscale@192.168.50.13/system",
}
SPREAD = ["hv1", "hv2", "hv3", "hv1", "hv2", "hv3", "hv1", "hv2", "hv1", "hv2"]


def test_multihost_has_one_provider_pool_routed_network_and_base_image_per_host(
    multihost: Recording,
) -> None:
    providers = multihost.of_type("pulumi:providers:libvirt")
    assert {name: p.inputs["uri"] for name, p in providers.items()} == {
        f"hypervisor-{host}-provider": uri for host, uri in HOSTS.items()
    }
    networks = multihost.of_type("libvirt:index/network:Network")
    assert {name: (n.inputs["mode"], n.inputs["addresses"]) for name, n in networks.items()} == {
        f"hypervisor-hv{i}-network": ("route", [f"10.77.{i}.0/24"]) for i in (1, 2, 3)
    }
    for name in [*networks, *multihost.of_type("libvirt:index/pool:Pool")]:
        host = name.split("-")[1]
        assert multihost.resources[name].provider.startswith("urn:pulumi:multihost::hostscale::"), name
        assert f"hypervisor-{host}-provider" in multihost.resources[name].provider, name
    budgets = {
        name: (r.inputs["libvirtUri"], r.inputs["budgetMemoryMb"], r.inputs["budgetVcpus"])
        for name, r in multihost.resources.items()
        if r.type == "hostscale:index:Hypervisor"
    }
    assert budgets == {
        "hypervisor-hv1": (HOSTS["hv1"], 8192, 6),
        "hypervisor-hv2": (HOSTS["hv2"], 16384, 8),
        "hypervisor-hv3": (HOSTS["hv3"], 4096, 2),
    }


def test_multihost_puts_each_vm_its_disk_and_seed_on_its_host(multihost: Recording) -> None:
    for index, host in enumerate(SPREAD):
        for name in (f"vms-{index}", f"vms-{index}-disk", f"vms-{index}-cloudinit"):
            assert f"hypervisor-{host}-provider" in multihost.resources[name].provider, (
                f"{name}: not on {host}"
            )
        disk = multihost.resources[f"vms-{index}-disk"].inputs
        assert disk["baseVolumeId"] == f"hypervisor-{host}-base-id", f"vms-{index}-disk"
        assert disk["pool"] == "hsmulti-pool"
        nic = multihost.resources[f"vms-{index}"].inputs["networkInterfaces"][0]
        assert nic["networkId"] == f"hypervisor-{host}-network-id", f"vms-{index}: on {host}'s network"


def test_multihost_workers_all_join_the_one_manager_and_pull_from_its_registry(multihost: Recording) -> None:
    for index, host in enumerate(SPREAD):
        doc = yaml.safe_load(multihost.resources[f"vms-{index}-cloudinit"].inputs["userData"])
        commands = [" ".join(cmd) for cmd in doc["runcmd"]]
        assert any("10.77.1.1:2377" in c for c in commands), f"vms-{index}: joins {commands}"
        assert any("docker pull -q 10.77.1.1:5000/hostscale/app" in c for c in commands), f"vms-{index}"
        daemon = json.loads(
            next(f for f in doc["write_files"] if f["path"] == "/etc/docker/daemon.json")["content"]
        )
        assert daemon["insecure-registries"] == ["10.77.1.1:5000"], f"vms-{index}"
        assert daemon["labels"] == [
            f"dev.hostscale.hypervisor={host}",
            f"dev.hostscale.vm=hsmulti-worker-{index}",
        ]
    joins = [multihost.resources[f"vms-{i}-join"].inputs["create"] for i in range(len(SPREAD))]
    assert joins[:4] == [
        f"./scripts/vm-join --uri {HOSTS['hv1']} --vm hsmulti-worker-0",
        f"./scripts/vm-join --uri {HOSTS['hv2']} --vm hsmulti-worker-1",
        f"./scripts/vm-join --uri {HOSTS['hv3']} --vm hsmulti-worker-2",
        f"./scripts/vm-join --uri {HOSTS['hv1']} --vm hsmulti-worker-3 --park suspended",
    ]


def test_multihost_autoscaler_reaches_remote_vms_over_ssh_with_pinned_host_keys(
    multihost: Recording,
) -> None:
    container = service(multihost, "autoscaler-container")
    assert settings_file(multihost)["fleet"]["vms"] == [
        {"name": f"hsmulti-worker-{i}", "libvirt_uri": HOSTS[host]} for i, host in enumerate(SPREAD)
    ]
    mounts = {m["target"]: m for m in container["mounts"]}
    assert mounts["/run/hostscale/libvirt-ssh-key"]["source"] == "/etc/hostscale/libvirt-ssh-key"
    assert mounts["/run/hostscale/libvirt-ssh-key"]["readOnly"] is True
    gate = {m["target"] for m in service(multihost, "autoscaler-gate")["mounts"]}
    assert "/var/run/libvirt/libvirt-sock" in gate, "hv1 is the local hypervisor: the gate holds its socket"
    assert gate_settings(multihost)["libvirt_domains"] == [
        f"hsmulti-worker-{i}" for i, host in enumerate(SPREAD) if host == "hv1"
    ], "the gate runs virsh on hv1's domains only"
    uploads = {u["file"]: u["content"] for u in container["uploads"]}
    known = uploads["/etc/hostscale/known_hosts"].splitlines()
    assert [line.split()[:2] for line in known] == [
        ["192.168.50.12", "ssh-ed25519"],
        ["192.168.50.13", "ssh-ed25519"],
    ]
    ssh_config = uploads["/etc/ssh/ssh_config.d/hostscale.conf"]
    for line in (
        "IdentityFile /run/hostscale/libvirt-ssh-key",
        "UserKnownHostsFile /etc/hostscale/known_hosts",
        "StrictHostKeyChecking yes",
        "BatchMode yes",
    ):
        assert f"    {line}\n" in ssh_config, line


def test_single_host_stacks_need_no_ssh_in_the_autoscaler(lab: Recording) -> None:
    container = service(lab, "autoscaler-container")
    assert {u["file"] for u in container["uploads"]} == {"/etc/hostscale/autoscaler.json"}
    assert "/run/hostscale/libvirt-ssh-key" not in {m["target"] for m in container["mounts"]}


def test_a_single_remote_hypervisor_is_reached_over_ssh_only() -> None:
    config = stack_config("lab")
    config["hostscale:vms"] = dict(
        config["hostscale:vms"],
        libvirt_uri="qemu+ssh://deploy@hypervisor.example/system",
        ssh_host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBj2d30KoOheLb20xUyzKmqb0D04pPxUuAC9NReNWI8B",
        ssh_identity_file="/etc/hostscale/libvirt-ssh-key",
    )
    run = record_program(config, "lab")
    container = service(run, "autoscaler-container")
    assert settings_file(run)["fleet"]["vms"] == [
        {"name": f"hslab-worker-{i}", "libvirt_uri": "qemu+ssh://deploy@hypervisor.example/system"}
        for i in range(3)
    ]
    targets = {m["target"] for m in container["mounts"]}
    gate = {m["target"] for m in service(run, "autoscaler-gate")["mounts"]}
    assert "/var/run/libvirt/libvirt-sock" not in gate, "no VM on the local hypervisor: no socket"
    assert "/run/hostscale/libvirt-ssh-key" in targets
    uploads = {u["file"]: u["content"] for u in container["uploads"]}
    assert uploads["/etc/hostscale/known_hosts"].startswith("hypervisor.example ssh-ed25519 AAAA")


def test_up_waits_for_the_tier_only_after_every_vm_joined(lab: Recording, local: Recording) -> None:
    """Lab replicas run on admitted workers only: a readiness step that ran before the joins would wait for
    replicas no node may run, and fail `up` after its timeout."""
    joins = sorted(name for name in lab.resources if name.startswith("vms-") and name.endswith("-join"))
    assert joins == ["vms-0-join", "vms-1-join", "vms-2-join"]
    assert set(joins) <= set(lab.resources["readiness-check"].depends_on)
    assert {"app-service", "load-balancer-haproxy"} <= set(local.resources["readiness-check"].depends_on)


def test_every_container_is_replaced_delete_first(stack: tuple[str, Recording]) -> None:
    """A container has a fixed name (and host ports): Docker refuses its replacement next to the old one (409),
    so a changed image or file must delete the old container first, under the real engine as in the harness."""
    name, run = stack
    containers = {n: r for n, r in run.resources.items() if r.type == "docker:index/container:Container"}
    assert containers, name
    assert [n for n, r in containers.items() if not r.delete_before_replace] == [], name


def test_the_optional_prometheus_containers_are_replaced_delete_first_too() -> None:
    config = stack_config("local")
    config["hostscale:prometheus"] = {"enabled": True}
    run = record_program(config, "local")
    prometheus = [
        n for n, r in run.resources.items() if n.startswith("prometheus-") and r.type.endswith("Container")
    ]
    assert sorted(prometheus) == ["prometheus-main", "prometheus-replicas"]
    assert all(run.resources[n].delete_before_replace for n in prometheus)


def test_each_remote_hypervisor_gets_the_forced_commands_list_of_its_own_domains(
    multihost: Recording,
) -> None:
    assert multihost.outputs["virsh_gate_settings"] == {
        host: json.dumps({"domains": [f"hsmulti-worker-{i}" for i, on in enumerate(SPREAD) if on == host]})
        + "\n"
        for host in ("hv2", "hv3")
    }

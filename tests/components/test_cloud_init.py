"""The worker VM's cloud-init user-data."""

from __future__ import annotations

import json

import yaml

from components.cloud_init import (
    JOIN_SCRIPT,
    TOKEN_FILE,
    WorkerSettings,
    join_script_source,
    render_user_data,
)

SETTINGS = WorkerSettings(
    hostname="hs-worker-0",
    ssh_public_key="ssh-ed25519 AAAA operator",
    manager_addr="10.77.0.1",
    join_token="SWMTKN-1-secret",  # noqa: S106 (a made-up token)
    labels={"dev.hostscale.vm": "hs-worker-0"},
    insecure_registries=("10.77.0.1:5000",),
)


def test_user_data_is_cloud_config_that_joins_the_manager() -> None:
    text = render_user_data(SETTINGS)
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert doc["hostname"] == "hs-worker-0"
    assert doc["locale"] is False
    assert doc["runcmd"][2] == ["python3", JOIN_SCRIPT, "10.77.0.1:2377", TOKEN_FILE]
    script = next(f for f in doc["write_files"] if f["path"] == JOIN_SCRIPT)
    assert (script["content"], script["permissions"]) == (join_script_source(), "0700")


def test_the_token_file_and_cloud_inits_copies_of_the_user_data_go_once_the_join_ran() -> None:
    doc = yaml.safe_load(render_user_data(SETTINGS))
    assert doc["runcmd"][3] == [
        "rm", "-f", TOKEN_FILE,
        "/var/lib/cloud/instance/user-data.txt",
        "/var/lib/cloud/instance/user-data.txt.i",
        "/var/lib/cloud/instance/obj.pkl",
    ]  # fmt: skip


def test_user_data_keeps_the_token_off_command_lines() -> None:
    doc = yaml.safe_load(render_user_data(SETTINGS))
    assert all("SWMTKN-1-secret" not in " ".join(cmd) for cmd in doc["runcmd"])
    assert all("docker swarm join" not in " ".join(cmd) for cmd in doc["runcmd"]), (
        "the CLI would take it on argv"
    )
    token = next(f for f in doc["write_files"] if f["path"] == TOKEN_FILE)
    assert (token["content"], token["permissions"]) == ("SWMTKN-1-secret\n", "0600")


def test_user_data_configures_engine_labels_and_the_local_registry() -> None:
    doc = yaml.safe_load(render_user_data(SETTINGS))
    daemon = json.loads(
        next(f for f in doc["write_files"] if f["path"] == "/etc/docker/daemon.json")["content"]
    )
    assert daemon == {"labels": ["dev.hostscale.vm=hs-worker-0"], "insecure-registries": ["10.77.0.1:5000"]}

"""The worker VM's cloud-init user-data."""

from __future__ import annotations

import json

import yaml

from components.cloud_init import TOKEN_FILE, WorkerSettings, render_user_data

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
    join = doc["runcmd"][2][-1]
    assert f'docker swarm join --token "$(cat {TOKEN_FILE})" 10.77.0.1:2377 && exit 0;' in join
    assert join.startswith("for attempt in $(seq 120); do")
    assert join.endswith("sleep 5; done; exit 1")
    assert doc["runcmd"][3] == ["rm", "-f", TOKEN_FILE], "the token file goes once used"


def test_user_data_keeps_the_token_off_command_lines() -> None:
    doc = yaml.safe_load(render_user_data(SETTINGS))
    assert all("SWMTKN-1-secret" not in " ".join(cmd) for cmd in doc["runcmd"])
    token = next(f for f in doc["write_files"] if f["path"] == TOKEN_FILE)
    assert (token["content"], token["permissions"]) == ("SWMTKN-1-secret\n", "0600")


def test_user_data_configures_engine_labels_and_the_local_registry() -> None:
    doc = yaml.safe_load(render_user_data(SETTINGS))
    daemon = json.loads(
        next(f for f in doc["write_files"] if f["path"] == "/etc/docker/daemon.json")["content"]
    )
    assert daemon == {"labels": ["dev.hostscale.vm=hs-worker-0"], "insecure-registries": ["10.77.0.1:5000"]}

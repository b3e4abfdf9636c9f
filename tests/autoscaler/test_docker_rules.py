"""The gate's rules on their own: which Docker API calls pass, what they are forwarded as, and the exact reason
for each refusal. The objects are shaped like the engine's answers; tests/autoscaler/test_gate.py runs the
same rules against the real engine."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from autoscaler.docker_rules import Call, Forward, Refused, Scope, decide

SCOPE = Scope(service="hs-1-app", worker_nodes=frozenset({"hs-1-vm-0", "hs-1-vm-1"}))
SERVICE: dict[str, Any] = {
    "ID": "svc123",
    "Version": {"Index": 41},
    "Spec": {
        "Name": "hs-1-app",
        "Labels": {},
        "TaskTemplate": {"ContainerSpec": {"Image": "app@sha256:aa", "Mounts": []}},
        "Mode": {"Replicated": {"Replicas": 2}},
    },
}
OTHER_SERVICE = copy.deepcopy(SERVICE) | {"ID": "svc999"}
OTHER_SERVICE["Spec"]["Name"] = "hs-1-postgres"
WORKER: dict[str, Any] = {
    "ID": "node1",
    "Version": {"Index": 7},
    "Description": {"Hostname": "hs-1-vm-0"},
    "Spec": {"Role": "worker", "Availability": "active", "Labels": {"dev.hostscale.admitted": "true"}},
}
MANAGER: dict[str, Any] = {
    "ID": "node0",
    "Version": {"Index": 3},
    "Description": {"Hostname": "host"},
    "ManagerStatus": {"Leader": True},
    "Spec": {"Role": "manager", "Availability": "active", "Labels": {}},
}
STRANGER = copy.deepcopy(WORKER) | {"ID": "node9", "Description": {"Hostname": "laptop"}}
OBJECTS = {
    "/services/hs-1-app": SERVICE,
    "/services/svc123": SERVICE,
    "/services/hs-1-postgres": OTHER_SERVICE,
    "/nodes/node1": WORKER,
    "/nodes/node0": MANAGER,
    "/nodes/node9": STRANGER,
}


async def fetch(path: str) -> dict[str, Any]:
    assert path.startswith("/v1.47/"), f"read at the call's API version: {path}"
    path = path.removeprefix("/v1.47")
    if path not in OBJECTS:
        raise Refused(f"{path}: the engine answered 404")
    return OBJECTS[path]


def scaled(replicas: Any, **changes: Any) -> bytes:
    spec = copy.deepcopy(SERVICE["Spec"])
    spec["Mode"]["Replicated"]["Replicas"] = replicas
    spec["TaskTemplate"]["ContainerSpec"].update(changes)
    return json.dumps(spec).encode()


def node_spec(node: dict[str, Any], **changes: Any) -> bytes:
    return json.dumps(dict(node["Spec"], **changes)).encode()


def call(method: str, path: str, query: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Call:
    return Call(method, path, query, body)


ALLOWED = {
    "a ping": (call("HEAD", "/_ping"), Forward("HEAD", "/_ping", ())),
    "the version, unversioned as docker-py asks": (call("GET", "/version"), Forward("GET", "/version", ())),
    "the app service by name": (
        call("GET", "/v1.47/services/hs-1-app"),
        Forward("GET", "/v1.47/services/hs-1-app", (), expect_service=True),
    ),
    "the app service's running tasks": (
        call("GET", "/v1.47/tasks", (("filters", '{"desired-state": ["running"], "service": ["svc123"]}'),)),
        Forward(
            "GET", "/v1.47/tasks", (("filters", '{"desired-state": ["running"], "service": ["svc123"]}'),)
        ),
    ),
    "the tasks on one node": (
        call("GET", "/v1.47/tasks", (("filters", '{"node": ["node1"]}'),)),
        Forward("GET", "/v1.47/tasks", (("filters", '{"node": ["node1"]}'),)),
    ),
    "the node list": (call("GET", "/v1.47/nodes"), Forward("GET", "/v1.47/nodes", ())),
    "a scale of the app service, forwarded by its ID": (
        call("POST", "/v1.47/services/hs-1-app/update", (("version", "41"),), scaled(5)),
        Forward("POST", "/v1.47/services/svc123/update", (("version", "41"),), scaled(5)),
    ),
    "a worker VM paused, to hand its tasks over before it parks": (
        call(
            "POST", "/v1.47/nodes/node1/update", (("version", "7"),), node_spec(WORKER, Availability="pause")
        ),
        Forward(
            "POST", "/v1.47/nodes/node1/update", (("version", "7"),), node_spec(WORKER, Availability="pause")
        ),
    ),
    "a worker VM drained": (
        call(
            "POST", "/v1.47/nodes/node1/update", (("version", "7"),), node_spec(WORKER, Availability="drain")
        ),
        Forward(
            "POST", "/v1.47/nodes/node1/update", (("version", "7"),), node_spec(WORKER, Availability="drain")
        ),
    ),
}


@pytest.mark.parametrize(("request_", "forward"), ALLOWED.values(), ids=ALLOWED.keys())
def test_the_autoscalers_own_calls_are_let_through(request_: Call, forward: Forward) -> None:
    assert asyncio.run(decide(request_, SCOPE, fetch)) == forward


REFUSED = {
    "a container create": (
        call("POST", "/v1.47/containers/create", body=b'{"Image": "alpine"}'),
        "not a call the autoscaler makes",
    ),
    "an exec": (call("POST", "/v1.47/containers/abc/exec", body=b"{}"), "not a call the autoscaler makes"),
    "a service create": (
        call("POST", "/v1.47/services/create", body=scaled(1)),
        "not a call the autoscaler makes",
    ),
    "a container list": (call("GET", "/v1.47/containers/json"), "not a call the autoscaler makes"),
    "a path that climbs out": (
        call("GET", "/v1.47/services/../containers/json"),
        "not a call the autoscaler makes",
    ),
    "a scale that also changes the image": (
        call("POST", "/v1.47/services/svc123/update", (("version", "41"),), scaled(3, Image="evil:latest")),
        "a service update may change Mode.Replicated.Replicas only; "
        "this one changes TaskTemplate.ContainerSpec.Image",
    ),
    "a scale that adds a mount": (
        call(
            "POST",
            "/v1.47/services/svc123/update",
            (("version", "41"),),
            scaled(3, Mounts=[{"Type": "bind", "Source": "/", "Target": "/host"}]),
        ),
        "a service update may change Mode.Replicated.Replicas only; "
        "this one changes TaskTemplate.ContainerSpec.Mounts",
    ),
    "a scale with a new key": (
        call("POST", "/v1.47/services/svc123/update", (("version", "41"),), scaled(3, Privileges={"x": 1})),
        "a service update may change Mode.Replicated.Replicas only; "
        "this one changes TaskTemplate.ContainerSpec.Privileges",
    ),
    "a replica count that is not a count": (
        call("POST", "/v1.47/services/svc123/update", (("version", "41"),), scaled(10**6)),
        "Mode.Replicated.Replicas 1000000 is not a count from 0 to 1000",
    ),
    "an update of another service": (
        call("POST", "/v1.47/services/hs-1-postgres/update", (("version", "41"),), scaled(3)),
        "service 'hs-1-postgres' is not the app service 'hs-1-app'",
    ),
    "a read of another service": (
        call("GET", "/v1.47/tasks", (("filters", '{"service": ["hs-1-postgres"]}'),)),
        "service 'hs-1-postgres' is not the app service 'hs-1-app'",
    ),
    "an unfiltered task list": (
        call("GET", "/v1.47/tasks"),
        "a task list needs one filters parameter naming the app service or a node",
    ),
    "a scale at a stale version": (
        call("POST", "/v1.47/services/svc123/update", (("version", "40"),), scaled(3)),
        "version '40' is not the current one (41)",
    ),
    "a scale with a rollback": (
        call(
            "POST", "/v1.47/services/svc123/update", (("version", "41"), ("rollback", "previous")), scaled(3)
        ),
        "query parameter 'rollback' is not one the autoscaler sends",
    ),
    "a node update that changes the role": (
        call("POST", "/v1.47/nodes/node1/update", (("version", "7"),), node_spec(WORKER, Role="manager")),
        "a node update may change Availability only; this one changes Role",
    ),
    "a node update that changes the labels": (
        call("POST", "/v1.47/nodes/node1/update", (("version", "7"),), node_spec(WORKER, Labels={})),
        "a node update may change Availability only; this one changes Labels.dev.hostscale.admitted",
    ),
    "a node set to an availability Docker does not have": (
        call(
            "POST", "/v1.47/nodes/node1/update", (("version", "7"),), node_spec(WORKER, Availability="gone")
        ),
        "Availability 'gone' is not one of ['active', 'drain', 'pause']",
    ),
    "the manager drained": (
        call(
            "POST", "/v1.47/nodes/node0/update", (("version", "3"),), node_spec(MANAGER, Availability="drain")
        ),
        "node 'host' is a manager, not a worker VM",
    ),
    "a worker that is not one of the stack's VMs": (
        call(
            "POST",
            "/v1.47/nodes/node9/update",
            (("version", "7"),),
            node_spec(STRANGER, Availability="drain"),
        ),
        "node 'laptop' is not one of this stack's worker VMs",
    ),
    "a body that is not JSON": (
        call("POST", "/v1.47/services/svc123/update", (("version", "41"),), b"Replicas=3"),
        "the body is not JSON",
    ),
}


@pytest.mark.parametrize(("request_", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_every_other_call_is_refused_with_its_reason(request_: Call, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        asyncio.run(decide(request_, SCOPE, fetch))
    assert str(refused.value) == reason

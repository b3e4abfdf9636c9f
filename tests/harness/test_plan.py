"""The engine's step decision as a table: recorded inputs, new inputs, ignore_changes and replace-on properties
in; the step (and the inputs the provider gets) out. And the order in which deletes go."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.output import Unknown

from harness.plan import (
    MISSING,
    Change,
    Node,
    NotModelled,
    deletion_waves,
    ignore_changes,
    plan_step,
)
from harness.program import SECRET_SIG

SERVICE = "docker:index/service:Service"
CONTAINER = "docker:index/container:Container"
COMMAND = "command:local:Command"


def secret(value: Any) -> dict[str, Any]:
    return {SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "value": value}


def service(image: str = "app:1", replicas: int = 2, name: str = "hs-app") -> dict[str, Any]:
    return {
        "name": name,
        "taskSpec": {"containerSpec": {"image": image, "env": {"PORT": "8000"}}},
        "mode": {"replicated": {"replicas": replicas}},
    }


def container(**changes: Any) -> dict[str, Any]:
    return {"name": "hs-autoscaler", "image": "as:1", "restart": "unless-stopped",
            "uploads": [{"file": "/etc/a.json", "content": "{}"}], **changes}  # fmt: skip


REPLICAS = "mode.replicated.replicas"
UNKNOWN = Unknown()  # type: ignore[no-untyped-call]  # the SDK's class has no annotations

STEPS = [
    pytest.param(SERVICE, None, service(), [], [], "create", [], id="a resource not in the state is created"),
    pytest.param(SERVICE, service(), service(), [], [], "same", [], id="unchanged inputs are the same step"),
    pytest.param(
        SERVICE, service(), service(image="app:2"), [], [], "update", ["taskSpec.containerSpec.image"],
        id="a new service image is an update in place",
    ),
    pytest.param(
        SERVICE, service(replicas=2), service(replicas=5), [REPLICAS], [], "same", [],
        id="an ignored property that changed is no change",
    ),
    pytest.param(
        SERVICE, service(replicas=2), service(replicas=5), [], [], "update", [REPLICAS],
        id="a replica count not ignored is an update",
    ),
    pytest.param(
        SERVICE, service(), service(name="hs-app2"), [], [], "replace", ["name"],
        id="a service's new name replaces it (ForceNew in the provider)",
    ),
    pytest.param(
        SERVICE, service(), {**service(), "mode": {"global": {}}}, [], [], "replace",
        ["mode.global", "mode.replicated"], id="a switch to global mode replaces the service",
    ),
    pytest.param(
        CONTAINER, container(), container(uploads=[{"file": "/etc/a.json", "content": "{\"a\": 1}"}]), [], [],
        "replace", ["uploads[0].content"], id="a container's new uploaded file replaces it",
    ),
    pytest.param(
        CONTAINER, container(), container(restart="always"), [], [], "update", ["restart"],
        id="a container's restart policy is updated in place",
    ),
    pytest.param(
        COMMAND, {"create": "build a", "triggers": ["t1"]}, {"create": "build b", "triggers": ["t1"]}, [],
        ["triggers[*]"], "update", ["create"], id="a command's new create step is an update (it runs again)",
    ),
    pytest.param(
        COMMAND, {"create": "build", "triggers": ["t1"]}, {"create": "build", "triggers": ["t2"]}, [],
        ["triggers[*]"], "replace", ["triggers[0]"],
        id="a command's changed trigger replaces it (the SDK's replace_on_changes)",
    ),
    pytest.param(
        SERVICE, service(), {**service(), "labels": [{"label": "a", "value": "b"}]}, [], ["labels"], "replace",
        ["labels"], id="replace_on_changes makes an in-place property replace",
    ),
    pytest.param(
        "docker:index/secret:Secret", {"name": "pw", "data": secret("YQ==")}, {"name": "pw", "data": secret("Yg==")},
        [], [], "replace", ["data"], id="a secret's new data replaces it",
    ),
    pytest.param(
        "docker:index/volume:Volume", {"name": "pg"}, {"name": "pg2"}, [], [], "replace", ["name"],
        id="a volume's new name replaces it",
    ),
    pytest.param(
        SERVICE, service(), {**service(), "taskSpec": UNKNOWN}, [], [], "update", ["taskSpec"],
        id="an input not known yet (a preview) counts as changed",
    ),
    pytest.param(
        SERVICE, service(replicas=2), service(replicas=2.0), [], [], "same", [],  # type: ignore[arg-type]
        id="2 and 2.0 are the same number",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("typ", "old", "new", "ignored", "replace_on", "op", "changed"), STEPS)
def test_the_step_for_each_change(
    typ: str,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    ignored: list[str],
    replace_on: list[str],
    op: str,
    changed: list[str],
) -> None:
    step = plan_step(typ, "r", old, new, ignored, replace_on)
    assert (step.op, step.changed) == (op, changed)


def test_an_ignored_property_reaches_the_provider_at_its_recorded_value() -> None:
    # The engine sends the OLD input for an ignored property; the Docker provider sends the whole spec, so an
    # image update sets the replica count back to the recorded one, whatever the autoscaler set since.
    step = plan_step(SERVICE, "app", service(replicas=2), service(image="app:2", replicas=7), [REPLICAS])
    assert step.op == "update"
    assert step.inputs == service(image="app:2", replicas=2)


def test_an_ignored_property_the_state_does_not_have_is_left_out() -> None:
    assert ignore_changes({"a": 1}, {"a": 1, "b": 2}, ["b"]) == {"a": 1}


def test_a_secret_change_is_marked_secret() -> None:
    step = plan_step("docker:index/secret:Secret", "pw", {"data": secret("YQ==")}, {"data": secret("Yg==")})
    assert step.changes == (Change("data", "YQ==", "Yg==", secret=True),)


def test_a_new_property_is_a_change_from_missing() -> None:
    step = plan_step(CONTAINER, "c", container(), container(restart="always", maxRetryCount=3))
    assert step.changes == (
        Change("maxRetryCount", MISSING, 3, secret=False),
        Change("restart", "unless-stopped", "always", secret=False),
    )


REFUSED = [
    pytest.param(
        "docker:index/plugin:Plugin", {}, {"a": 1}, False,
        "docker:index/plugin:Plugin r: the harness has no replace rules for resource type docker:index/plugin:Plugin",
        id="a type without replace rules is refused",
    ),
    pytest.param(
        CONTAINER, container(), container(frobnicate=True), False,
        "docker:index/container:Container r: a change to frobnicate is neither a replace nor an in-place update "
        "that the provider declares; the harness does not model it",
        id="a change to a property the provider declares nothing about is refused",
    ),
    pytest.param(
        CONTAINER, container(), container(image="as:2"), True,
        "docker:index/container:Container r is protected: the engine refuses to replace it (changed: image)",
        id="a protected resource is not replaced",
    ),
    pytest.param(
        "libvirt:index/network:Network", {"name": "n", "dhcp": {"enabled": True}},
        {"name": "n", "dhcp": {"enabled": False}}, False,
        "libvirt:index/network:Network r: the provider would update dhcp.enabled in place; the harness does not "
        "apply in-place updates of this type",
        id="an in-place update the harness does not apply is refused",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("typ", "old", "new", "protect", "message"), REFUSED)
def test_what_the_harness_does_not_model_is_refused_naming_resource_and_property(
    typ: str, old: dict[str, Any], new: dict[str, Any], protect: bool, message: str
) -> None:
    with pytest.raises(NotModelled) as refused:
        plan_step(typ, "r", old, new, protect=protect)
    assert str(refused.value) == message


def test_a_wildcard_in_ignore_changes_is_refused() -> None:
    with pytest.raises(NotModelled, match=r"^ignore_changes path 'a\[\*\]': wildcards are not modelled$"):
        ignore_changes({}, {}, ["a[*]"])


WAVES = [
    pytest.param(
        [Node("net", ()), Node("svc", ("net",)), Node("lb", ("svc",))], [[2], [1], [0]],
        id="a chain is deleted dependents first",
    ),
    pytest.param(
        [Node("net", ()), Node("db", ("net",)), Node("app", ("net",))], [[2, 1], [0]],
        id="independent resources go in one wave, the most recent first",
    ),
    pytest.param(
        [Node("net", ()), Node("svc", ("net",)), Node("net", ())], [[1], [2, 0]],
        id="a dependent goes before both a replacement and the object it replaced",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("nodes", "waves"), WAVES)
def test_deletes_go_in_waves_dependents_first(nodes: list[Node], waves: list[list[int]]) -> None:
    assert deletion_waves(nodes) == waves

"""What the autoscaler may ask of the Docker engine: the calls it makes, and nothing else.

The Docker socket is root on the host (a container create with `/` bind-mounted is enough), so the autoscaler
does not hold it. It talks to the gate (autoscaler/gate.py), which holds the socket and lets through only:

- reads: `/_ping`, `/version`, the app service (`GET /services/<app>`), its tasks and the tasks on one node
  (`GET /tasks?filters=...`), the nodes (`GET /nodes`, `GET /nodes/<id>`);
- `POST /services/<app>/update` whose body is the service's current spec with only
  `Mode.Replicated.Replicas` changed, at the current version;
- `POST /nodes/<id>/update` on a worker VM's node (a declared VM name, role worker, not a manager) whose body
  is the node's current spec with only `Availability` changed (active, pause or drain), at the current version.

Each write is compared with the object's current state read by the gate itself, and pinned to the version it
read: Swarm refuses an update whose version is not the current one, so nothing can change between the check
and the write. Every other call is refused, naming it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Docker's API paths may carry a version prefix: /v1.47/services/x is /services/x in API version 1.47.
VERSIONED = re.compile(r"^(?P<prefix>/v[0-9]{1,2}\.[0-9]{1,3})?(?P<path>/[A-Za-z0-9_./-]*)$")
# A Docker object reference: an ID, an ID prefix or a name; never a path separator or a query.
REFERENCE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
SERVICE = re.compile(rf"^/services/(?P<ref>{REFERENCE})$")
SERVICE_UPDATE = re.compile(rf"^/services/(?P<ref>{REFERENCE})/update$")
NODE = re.compile(rf"^/nodes/(?P<ref>{REFERENCE})$")
NODE_UPDATE = re.compile(rf"^/nodes/(?P<ref>{REFERENCE})/update$")
# The stack config's own bound on replicas.max (components/config.py).
MAX_REPLICAS = 1000
# pause: a VM handed over before it parks keeps its tasks but gets no new one (autoscaler/warm_pool.py).
AVAILABILITIES = frozenset({"active", "pause", "drain"})
TASK_FILTERS = frozenset({"service", "node", "desired-state"})


class Refused(Exception):
    """A call the gate does not let through; the message says why."""


@dataclass(frozen=True)
class Scope:
    """What this stack's autoscaler acts on: the app service, and the worker VMs by name (their nodes'
    hostnames)."""

    service: str
    worker_nodes: frozenset[str]


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # as sent, with its version prefix if any
    query: tuple[tuple[str, str], ...]
    body: bytes

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Forward:
    """Send this to the engine (the path may name the object by the full ID the gate resolved); `expect_service`
    asks the gate to check that the answer is the app service before passing it on."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: bytes = b""
    expect_service: bool = False


# Reads an object from the engine at the API version of the call it checks (the spec compared is the one the
# caller read): path -> its JSON, or Refused when the engine has none.
Fetch = Callable[[str], Awaitable[dict[str, Any]]]


def unversioned(path: str) -> tuple[str, str]:
    match = VERSIONED.match(path)
    if match is None:
        raise Refused("not a Docker API path the autoscaler uses")
    return match["prefix"] or "", match["path"]


async def decide(call: Call, scope: Scope, fetch: Fetch) -> Forward:
    """The request to forward for an allowed call; Refused for anything else."""
    prefix, path = unversioned(call.path)
    method = call.method
    if method in ("GET", "HEAD") and path == "/_ping":
        return Forward(method, call.path, ())
    if method == "GET" and path == "/version":
        return Forward(method, call.path, ())
    if method == "GET" and path == "/nodes":
        return Forward(method, call.path, _only(call.query, {"filters"}))
    if method == "GET" and (match := NODE.match(path)):
        return Forward(method, call.path, _only(call.query, set()))
    if method == "GET" and SERVICE.match(path):
        return Forward(method, call.path, _only(call.query, {"insertDefaults"}), expect_service=True)
    if method == "GET" and path == "/tasks":
        await _check_task_filters(call.query, scope, fetch, prefix)
        return Forward(method, call.path, call.query)
    if method == "POST" and (match := SERVICE_UPDATE.match(path)):
        service = await _app_service(f"{prefix}/services/{match['ref']}", scope, fetch)
        version = _version(call.query, service)
        _check_scale_only(service, _json_body(call.body))
        return Forward(
            method, f"{prefix}/services/{service['ID']}/update", (("version", version),), call.body
        )
    if method == "POST" and (match := NODE_UPDATE.match(path)):
        node = await _worker_node(f"{prefix}/nodes/{match['ref']}", scope, fetch)
        version = _version(call.query, node)
        _check_availability_only(node, _json_body(call.body))
        return Forward(method, f"{prefix}/nodes/{node['ID']}/update", (("version", version),), call.body)
    raise Refused("not a call the autoscaler makes")


def check_service_answer(answer: Any, scope: Scope) -> None:
    """A service read passes only when it is the app service (a reference can be a name, an ID or a prefix)."""
    name = answer.get("Spec", {}).get("Name") if isinstance(answer, dict) else None
    if name != scope.service:
        raise Refused(f"service {name!r} is not the app service {scope.service!r}")


def _only(query: tuple[tuple[str, str], ...], allowed: set[str]) -> tuple[tuple[str, str], ...]:
    for key, _ in query:
        if key not in allowed:
            raise Refused(f"query parameter {key!r} is not one the autoscaler sends")
    return query


async def _check_task_filters(
    query: tuple[tuple[str, str], ...], scope: Scope, fetch: Fetch, prefix: str
) -> None:
    """Tasks of the app service, or of one node: docker-py's Service.tasks() and the warm pool's tasks_on()."""
    _only(query, {"filters"})
    raw = [value for key, value in query if key == "filters"]
    if len(raw) != 1:
        raise Refused("a task list needs one filters parameter naming the app service or a node")
    try:
        filters = json.loads(raw[0])
    except ValueError:
        raise Refused("the task filters are not JSON") from None
    if not isinstance(filters, dict) or not set(filters) <= TASK_FILTERS:
        raise Refused(f"task filters other than {sorted(TASK_FILTERS)}")
    services = _filter_values(filters.get("service"))
    if not services and not _filter_values(filters.get("node")):
        raise Refused("a task list must be filtered by the app service or by a node")
    for ref in services:
        await _app_service(f"{prefix}/services/{ref}", scope, fetch)


def _filter_values(value: Any) -> list[str]:
    # Docker takes a filter as a list of values or as a {value: true} map.
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, dict) and all(isinstance(v, str) for v in value):
        return list(value)
    raise Refused(f"a task filter value {value!r} that is not a list of names")


async def _app_service(path: str, scope: Scope, fetch: Fetch) -> dict[str, Any]:
    service = await fetch(path)
    check_service_answer(service, scope)
    return service


async def _worker_node(path: str, scope: Scope, fetch: Fetch) -> dict[str, Any]:
    node = await fetch(path)
    hostname = node.get("Description", {}).get("Hostname")
    if node.get("ManagerStatus") is not None or node.get("Spec", {}).get("Role") != "worker":
        raise Refused(f"node {hostname!r} is a manager, not a worker VM")
    if hostname not in scope.worker_nodes:
        raise Refused(f"node {hostname!r} is not one of this stack's worker VMs")
    return node


def _version(query: tuple[tuple[str, str], ...], current: Mapping[str, Any]) -> str:
    _only(query, {"version"})
    sent = [value for key, value in query if key == "version"]
    index = str(current.get("Version", {}).get("Index"))
    if sent != [index]:
        raise Refused(f"version {sent[0] if sent else None!r} is not the current one ({index})")
    return index


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise Refused("the body is not JSON") from None


def _check_scale_only(service: Mapping[str, Any], body: Any) -> None:
    current = service["Spec"]
    replicated = current.get("Mode", {}).get("Replicated")
    if replicated is None:
        raise Refused(f"service {current.get('Name')!r} is not replicated")
    replicas = body.get("Mode", {}).get("Replicated", {}).get("Replicas") if isinstance(body, dict) else None
    if type(replicas) is not int or not 0 <= replicas <= MAX_REPLICAS:
        raise Refused(f"Mode.Replicated.Replicas {replicas!r} is not a count from 0 to {MAX_REPLICAS}")
    expected = copy.deepcopy(current)
    expected["Mode"]["Replicated"]["Replicas"] = replicas
    _same_but(expected, body, "a service update may change Mode.Replicated.Replicas only")


def _check_availability_only(node: Mapping[str, Any], body: Any) -> None:
    availability = body.get("Availability") if isinstance(body, dict) else None
    if availability not in AVAILABILITIES:
        raise Refused(f"Availability {availability!r} is not one of {sorted(AVAILABILITIES)}")
    expected = dict(node["Spec"], Availability=availability)
    _same_but(expected, body, "a node update may change Availability only")


def _same_but(expected: Any, body: Any, rule: str) -> None:
    changed = sorted(set(_differences(expected, body, "")))
    if changed:
        raise Refused(f"{rule}; this one changes {', '.join(changed)}")


def _differences(expected: Any, sent: Any, at: str) -> Iterator[str]:
    if isinstance(expected, dict) and isinstance(sent, dict):
        for key in expected.keys() | sent.keys():
            where = f"{at}.{key}" if at else str(key)
            if key not in expected or key not in sent:
                yield where
            else:
                yield from _differences(expected[key], sent[key], where)
    elif expected != sent or type(expected) is not type(sent):
        yield at or "the whole body"

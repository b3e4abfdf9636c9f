"""haproxy.cfg from typed settings: a pure function, validated by `haproxy -c` in the tests.

The HAProxy image's default config (images/haproxy/haproxy.cfg) is this renderer's output with environment
placeholders (`python -m components.haproxy_cfg > images/haproxy/haproxy.cfg`; a test keeps them in step).
"""

from __future__ import annotations

from dataclasses import dataclass

# The backend that serves the app: the autoscaler reads its metrics by this name (components/autoscaler.py).
BACKEND = "app"
# HAProxy's readiness check: a replica whose /healthz fails CHECK_FALL checks in a row, CHECK_INTER_S apart,
# leaves the pool. A draining replica answers 503 at once, so HAProxy stops sending it requests at most
# drain_detection_s() after it starts draining (components/app_tier.py keeps it serving that long).
CHECK_INTER_S = 1
CHECK_FALL = 3


def drain_detection_s() -> int:
    """The longest a draining replica may still get new requests: up to one interval until the next check,
    then CHECK_FALL failed checks."""
    return CHECK_INTER_S * (CHECK_FALL + 1)


@dataclass(frozen=True)
class HAProxySettings:
    backend_host: str  # a DNS name Docker resolves to every replica: tasks.<service>
    backend_port: str
    slots: str  # server-template size: the most replicas the backend can ever hold
    server_maxconn: str  # per replica; beyond it requests queue in HAProxy
    queue_timeout_s: str
    queue_max: str  # requests waiting for a replica beyond this are refused at once (503 + Retry-After)
    frontend_bind: str = ":8080"
    metrics_bind: str = ":8404"


# Values for the image's default config: HAProxy expands "${VAR}" inside double quotes at start-up.
IMAGE_DEFAULT = HAProxySettings(
    backend_host='"${HAPROXY_BACKEND_HOST}:${HAPROXY_BACKEND_PORT}"',
    backend_port="",
    slots='"${HAPROXY_BACKEND_SLOTS}"',
    server_maxconn='"${HAPROXY_SERVER_MAXCONN}"',
    queue_timeout_s="10",
    queue_max='"${HAPROXY_QUEUE_MAX}"',
    frontend_bind='"${HAPROXY_FRONTEND_BIND}"',
    metrics_bind='"${HAPROXY_METRICS_BIND}"',
)

_TEMPLATE = """\
# {title}
global
    # Stay far below the engine's open-file limit (20,000 here): every proxied connection costs two descriptors.
    maxconn 4096
    log stdout format raw local0 notice
    stats socket /run/haproxy/admin.sock mode 600 level admin
    hard-stop-after 15s
    # Scale from zero: the backend holds a request while no replica is UP (images/haproxy/, in the image).
    lua-load /etc/haproxy/hold_for_replica.lua

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 10s
    # A request waits this long for a free slot (per-server maxconn) before HAProxy answers 503.
    timeout queue {queue_timeout_s}s
    retries 3
    option redispatch 1
    # conn-failure: the request never left HAProxy, so any method may go to another replica. empty-response and
    # junk-response: the replica got the request and died or closed before answering, possibly after its
    # commit; HAProxy replays those whatever the method, so the backend disables them for all but safe methods.
    retry-on conn-failure empty-response junk-response

resolvers docker
    nameserver dockerdns 127.0.0.11:53
    accepted_payload_size 8192
    resolve_retries 3
    timeout resolve 1s
    timeout retry 1s
    hold valid 1s
    hold other 1s
    hold refused 1s
    hold nx 1s
    hold timeout 1s
    # A replica that leaves DNS leaves the pool at once: its slot must not keep receiving requests.
    hold obsolete 0s

frontend web
    bind {frontend_bind}
    # A tier at its capacity queues the excess (each request for at most `timeout queue`); past the queue's bound
    # it refuses at once, so clients back off instead of piling up behind replicas that are already full.
    http-request return status 503 content-type application/json string '{{"error": {{"status": 503, "message": "every replica is busy; retry shortly"}}}}' hdr Retry-After 1 if {{ queue({backend}) ge {queue_max} }}
    # The same bound for requests held while no replica is UP (scale from zero): they are the backend's sessions.
    http-request return status 503 content-type application/json string '{{"error": {{"status": 503, "message": "no replica is up yet and too many requests wait; retry shortly"}}}}' hdr Retry-After 1 if {{ nbsrv({backend}) eq 0 }} {{ be_conn({backend}) ge {queue_max} }}
    default_backend {backend}

backend {backend}
    balance leastconn
    # No replica UP (the tier idles at zero, or every replica is starting): hold the request, as a queued one
    # waits for a free slot and for as long, while the autoscaler, which counts it as demand, starts one.
    http-request lua.hold_for_replica {backend} {queue_timeout_s}000 if {{ nbsrv({backend}) eq 0 }}
    # Readiness, not liveness: it only decides whether a replica gets traffic. A busy replica answers its check
    # late, not never: a check may take 3 s, and a replica leaves the pool after three missed checks in a row.
    # (Swarm's own health check is the liveness probe, and it is far more patient: components/app_tier.py.)
    option httpchk GET /healthz
    http-check expect status 200
    timeout check 3s
    default-server check inter {check_inter_s}s fall {check_fall} rise 1 maxconn {server_maxconn}
    # A POST (or PUT, PATCH, DELETE) that reached a replica is never sent again: a retried POST whose first
    # attempt had committed writes the item twice, and a retried DELETE answers 404 for a delete that happened.
    acl replayable method GET HEAD OPTIONS
    http-request disable-l7-retry unless replayable
    # What HAProxy itself answers when no replica can take a request (none UP, or the queue timed out).
    http-error status 503 content-type application/json string '{{"error": {{"status": 503, "message": "no replica could take the request; retry shortly"}}}}' hdr Retry-After 1
    server-template app- {slots} {address} resolvers docker init-addr none resolve-prefer ipv4

frontend stats
    bind {metrics_bind}
    # The guard against DNS rebinding, as on the autoscaler's listener (autoscaler/host_guard.py): a page that
    # points a name it owns at 127.0.0.1 sends that name as Host, so only an IP address or localhost is served.
    acl host_is_address req.hdr(host),field(1,:) -m reg -i ^(localhost|[0-9.]+)$
    acl host_is_ipv6 req.hdr(host) -m reg ^[[][0-9a-fA-F:.]+[]](:[0-9]+)?$
    acl host_sent req.hdr_cnt(host) gt 0
    http-request deny deny_status 421 if host_sent !host_is_address !host_is_ipv6
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /stats
    stats refresh 5s
    # The stats CSV's addr column (each server's resolved address) is filled only with show-legends: the
    # autoscaler finds a new task's server by it to record when a powered-on VM's replica is UP and serving.
    stats show-legends
"""


def render_haproxy_cfg(
    settings: HAProxySettings, title: str = "Rendered by hostscale from the stack config."
) -> str:
    address = (
        settings.backend_host
        if not settings.backend_port
        else f"{settings.backend_host}:{settings.backend_port}"
    )
    return _TEMPLATE.format(
        title=title,
        backend=BACKEND,
        queue_timeout_s=settings.queue_timeout_s,
        check_inter_s=CHECK_INTER_S,
        check_fall=CHECK_FALL,
        queue_max=settings.queue_max,
        frontend_bind=settings.frontend_bind,
        server_maxconn=settings.server_maxconn,
        slots=settings.slots,
        address=address,
        metrics_bind=settings.metrics_bind,
    )


def image_default_cfg() -> str:
    return render_haproxy_cfg(
        IMAGE_DEFAULT,
        title=(
            "Default config of the hostscale HAProxy image, for running it alone: HTTP spread over every\n"
            "# address Docker's DNS returns for $HAPROXY_BACKEND_HOST. Metrics bind to loopback unless\n"
            "# HAPROXY_METRICS_BIND opens them. Generated: python -m components.haproxy_cfg"
        ),
    )


if __name__ == "__main__":
    print(image_default_cfg(), end="")

-- Scale from zero: a request that arrives while the backend has no usable server waits here, in the backend
-- (so HAProxy's backend counts it as a current session and the autoscaler sees the demand), until a replica
-- is UP or the wait reaches its bound; then it goes on to the backend as any request does (served, or 503 +
-- Retry-After from the backend's http-error when still no replica is up). core.msleep yields: a waiting request
-- holds no thread, only its session.
core.register_action("hold_for_replica", {"http-req"}, function(txn, backend, timeout_ms)
  local waited = 0
  local bound = tonumber(timeout_ms)
  while txn.f:nbsrv(backend) == 0 and waited < bound do
    core.msleep(100)
    waited = waited + 100
  end
end, 2)

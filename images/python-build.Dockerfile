# The build stage of every Python image (app, autoscaler): images/build.py puts it in front of the image's own
# Dockerfile, whose final stage copies /opt/venv from it.
#
# Dependencies are installed from the image's hash-pinned requirements.txt (exported from uv.lock). A network that
# intercepts TLS can hand pip its CA bundle as build-ca.pem in the context: it is used in this stage only, so it
# never reaches the final image or its history.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt build-ca.pe[m] /tmp/build/
RUN python3 -m venv /opt/venv \
 && if [ -s /tmp/build/build-ca.pem ]; then export PIP_CERT=/tmp/build/build-ca.pem; fi \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --require-hashes \
        -r /tmp/build/requirements.txt

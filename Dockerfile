# The gateway as a container image (README, "Docker and systemd"):
#   docker build -t bridge .    then    docker compose up -d    (docker-compose.yml)
FROM debian:bookworm-slim
LABEL org.opencontainers.image.title=bridge \
    org.opencontainers.image.description="ONVIF/RTSP gateway for legacy HTTP/CGI IP cameras"

# Debian's Python 3.11 (PyAV's wheel brings its own FFmpeg). libgsm1: the GSM 06.10 encoder of
# the emulated HAMA camera of `bridge demo`. ca-certificates: HTTPS event consumers (Notify).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv libgsm1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

# A non-root user whose uid is the usual first user's on the host, so a bind-mounted ./config
# made by that user is writable (the gateway keeps its users and device identities there).
RUN useradd --uid 1000 --user-group --home-dir /config --no-create-home \
        --shell /usr/sbin/nologin bridge \
    && mkdir /config && chown bridge:bridge /config

ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
ARG PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# The dependencies in a layer of their own, from pyproject.toml alone: a code change rebuilds
# only the small layer below. The optional `ca` secret is a CA bundle for builds behind a TLS
# proxy (`--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`); without it pip uses its own.
COPY pyproject.toml /tmp/pyproject.toml
RUN --mount=type=secret,id=ca,required=false \
    if [ -f /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv /opt/venv \
    && python3 -c 'import tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb")); \
print("\n".join(p["build-system"]["requires"] + p["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && pip install --requirement /tmp/requirements.txt \
    && rm /tmp/pyproject.toml /tmp/requirements.txt

COPY . /tmp/src
RUN pip install --no-deps --no-build-isolation /tmp/src && rm -rf /tmp/src

VOLUME ["/config"]
WORKDIR /config
USER bridge

# RTSP, web (status page, snapshots, metrics, /healthz), ONVIF devices from 8000 (one port per
# camera), and the discovery protocols: WS-Discovery, SSDP, mDNS. Multicast discovery and RTSP
# over UDP need the host's network (`network_mode: host`, see docker-compose.yml).
EXPOSE 8554 8080 8000-8031 3702/udp 1900/udp 5353/udp
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["bridge", "healthcheck", "--config", "/config/bridge.yaml"]
ENTRYPOINT ["bridge"]
# With an empty /config the first start writes a commented example there and exits.
CMD ["run", "--config", "/config/bridge.yaml", "--example-if-missing"]

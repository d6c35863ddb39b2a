FROM python:3.11-slim

# libgsm1: GSM 06.10 encoder for the emulated HAMA camera of `bridge demo`.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgsm1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN pip install --no-cache-dir .

# RTSP, web (status, snapshots, metrics), ONVIF devices from 8000 (one port per camera), and
# the discovery protocols: WS-Discovery, SSDP, mDNS. Multicast discovery needs the host's
# network (`network_mode: host`; see the README for cameras on addresses of their own).
EXPOSE 8554 8080 8000-8031 3702/udp 1900/udp 5353/udp
VOLUME ["/config"]
ENTRYPOINT ["bridge"]
CMD ["run", "--config", "/config/bridge.yaml"]

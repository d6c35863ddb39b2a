"""Finding and being found on the LAN.

Being found (every camera device of the gateway, as VMS look for them):
``wsdiscovery`` (WS-Discovery, what ONVIF clients probe with), ``ssdp`` (UPnP, what Blue Iris's
"Find/inspect" and other tools search with) and ``mdns`` (zeroconf: ``_rtsp._tcp`` per camera,
``_http._tcp`` for the gateway's web port). Finding (legacy cameras on the LAN, for
``bridge discover`` and ``gateway.discovery``): ``lan``, which sweeps address ranges with the
HTTP fingerprinting ``bridge probe`` uses and listens to what cameras announce by the same
three protocols.

The protocol modules are sans-I/O cores (datagram bytes in, messages out; messages to bytes);
``udp`` holds the thin asyncio layer they share (multicast membership, per-address sockets).
"""

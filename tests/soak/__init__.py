"""The fault and load soak: the gateway as its own process in front of emulated cameras (well
behaved and misbehaving), under churning RTSP viewers, ONVIF clients and fuzzers, with its RSS,
open fds, threads and CPU sampled from /proc. ``python tests/soak/run.py --minutes N`` runs it
by hand; ``test_soak.py`` is the 2-minute version CI runs. See README.md, "Soak"."""

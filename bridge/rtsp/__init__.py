"""RTSP server: sans-I/O protocol cores (messages, RTP/RTCP, payload formats, SDP)."""

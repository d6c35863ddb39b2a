"""bridge: serves legacy HTTP/CGI IP cameras to modern VMS as RTSP/H.264 and ONVIF devices."""

__version__ = "0.1.0"

"""Codec bitstream facts (H.264 NAL units and parameter sets, JPEG markers): pure functions
over bytes, no I/O, no PyAV. Every layer that needs them imports them from here: the cameras
(JPEG frames in), the media pipeline, the RTP payload formats and the ONVIF profiles.
"""

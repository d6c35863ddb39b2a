"""Media pipeline: camera sources shared by all consumers (and, later, PyAV transcoding)."""

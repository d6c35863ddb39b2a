"""Media pipeline: each camera's pictures and sound pulled once, transcoded per profile, and
handed out as protocol-neutral streams (:mod:`bridge.streams`). PyAV is imported only here."""

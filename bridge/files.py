"""Files the gateway writes next to its config (users, device identities): atomically, 0600."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml


def write_yaml_atomically(path: Path, header: str, data: Any) -> None:
    """Write ``header`` (comment lines) and ``data`` as YAML so that a reader sees the old
    file or the new one, never half of one; mode 0600 whatever the umask."""
    text = header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

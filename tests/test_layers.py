"""The package's layers point one way: camera -> media -> rtsp/onvif/web, with shared types and
codec facts in neutral modules, and each heavy library behind one layer (README "Layout").

Every module of ``bridge`` is read with ``ast`` (imports inside functions and ``TYPE_CHECKING``
blocks count: they are dependencies too), and a fresh interpreter imports the protocol layers
to catch what the source does not spell out. A rule broken names the module and the import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

import bridge

PACKAGE = Path(bridge.__file__).parent

# Modules every layer may share: they import no layer themselves.
NEUTRAL = (
    "bridge.errors",
    "bridge.ratelimit",
    "bridge.logs",
    "bridge.aiter",
    "bridge.streams",
    "bridge.talk",
    "bridge.fanout",
    "bridge.codecs",
)
LAYERS = (
    "bridge.cameras",
    "bridge.media",
    "bridge.rtsp",
    "bridge.onvif",
    "bridge.web",
    "bridge.discovery",
    "bridge.simulator",
    "bridge.ptz",
    "bridge.app",
    "bridge.commands",
    "bridge.cli",
    "bridge.config",
)

# (importer prefix, imported prefixes it must not reach, why)
FORBIDDEN: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "bridge.cameras",
        ("bridge.media", "bridge.rtsp", "bridge.onvif", "bridge.web", "bridge.discovery",
         "bridge.simulator", "bridge.app", "av"),
        "the drivers know nothing of the layers above them",
    ),
    (
        "bridge.media",
        ("bridge.rtsp", "bridge.onvif", "bridge.web", "bridge.discovery", "bridge.simulator",
         "bridge.app"),
        "media makes streams and knows nothing of who serves or describes them",
    ),
    (
        "bridge.rtsp",
        ("bridge.media", "bridge.cameras", "bridge.onvif", "bridge.web", "bridge.discovery",
         "bridge.simulator", "bridge.app"),
        "RTSP serves any StreamSpec: it knows no producer",
    ),
    (
        "bridge.web",
        ("bridge.media", "bridge.rtsp", "bridge.onvif", "bridge.simulator", "bridge.app"),
        "the web layer gets what it shows from the Gateway",
    ),
    *(
        (neutral, LAYERS, "shared modules import no layer, so every layer can import them")
        for neutral in NEUTRAL
    ),
    (
        "bridge.codecs",
        tuple(name for name in (*NEUTRAL, *LAYERS) if name not in ("bridge.codecs",
                                                                     "bridge.errors")),
        "codec facts are pure functions over bytes: nothing of bridge but its errors",
    ),
)  # fmt: skip

# Third-party libraries each confined to one layer: (library, the prefixes that may import it).
CONFINED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("av", ("bridge.media",)),
    ("zeep", ("bridge.onvif",)),
    ("lxml", ("bridge.onvif", "bridge.discovery", "bridge.safexml")),
)
# The emulators are test peers the gateway never loads (the benchmark, outside the package,
# runs them too).
EMULATOR_USERS = ("bridge.simulator", "bridge.commands", "bridge.cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    """Every module an ``import`` names, ``from X import y`` giving both X and X.y."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(filter(None, (*anchor, base)))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    graph = {}
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[module] = set(_imports(tree, module, path.name == "__init__.py"))
    return graph


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for importer, imported in sorted(graph.items()):
        for prefix, banned, why in FORBIDDEN:
            if _under(importer, prefix):
                found += [
                    f"{importer} imports {name}: {why}"
                    for name in sorted(imported)
                    if any(_under(name, target) for target in banned)
                ]
        for library, owners in CONFINED:
            if not any(_under(importer, owner) for owner in owners):
                found += [
                    f"{importer} imports {name}: {library} belongs to {', '.join(owners)} only"
                    for name in sorted(imported)
                    if _under(name, library)
                ]
        if not any(_under(importer, user) for user in EMULATOR_USERS):
            found += [
                f"{importer} imports {name}: the emulators are not part of the gateway"
                for name in sorted(imported)
                if _under(name, "bridge.simulator")
            ]
    return found


GRAPH = import_graph()


def test_the_layers_point_one_way() -> None:
    assert violations(GRAPH) == []


def test_the_graph_sees_the_imports_it_judges() -> None:
    """The rules above would pass on an empty graph: these edges exist, so they are read."""
    assert len(GRAPH) > 100
    assert "bridge.streams.AccessUnit" in GRAPH["bridge.media.source"]
    assert "bridge.streams" in GRAPH["bridge.rtsp.stream"]
    assert "bridge.fanout.Fanout" in GRAPH["bridge.rtsp.stream"]
    assert "av" in GRAPH["bridge.media.transcode"]
    assert "bridge.codecs.h264" in GRAPH["bridge.rtsp.h264"]
    assert "bridge.media.source" in GRAPH["bridge.app"]  # the Gateway wires the layers


@pytest.mark.parametrize(
    ("module", "source", "complaint"),
    [
        ("bridge.media.x", "from bridge.rtsp.stream import FanoutSource", "media makes streams"),
        ("bridge.media.x", "from ..rtsp import sdp", "media makes streams"),
        ("bridge.rtsp.x", "import bridge.media.source", "knows no producer"),
        ("bridge.rtsp.x", "def f():\n    from bridge.media import transcode", "knows no producer"),
        ("bridge.cameras.x", "import av", "the drivers know nothing"),
        ("bridge.simulator.x", "import av.video", "av belongs to bridge.media only"),
        ("bridge.codecs.x", "from bridge.streams import Codec", "nothing of bridge but"),
        ("bridge.streams", "from bridge.media import source", "shared modules import no layer"),
        ("bridge.web.x", "from lxml import etree", "lxml belongs to"),
        ("bridge.rtsp.x", "import zeep", "zeep belongs to bridge.onvif only"),
        ("bridge.app", "from bridge.simulator import core", "the emulators are not part"),
    ],
)
def test_a_violation_is_named(module: str, source: str, complaint: str) -> None:
    tree = ast.parse(source)
    graph = {module: set(_imports(tree, module, is_package=False))}
    found = violations(graph)
    assert any(complaint in line and line.startswith(module) for line in found), found


def test_the_protocol_layers_load_without_media_or_pyav() -> None:
    """The real import machinery, in a fresh interpreter: what loading RTSP and the drivers
    pulls in, transitively, whatever the source spells."""
    probe = (
        "import sys\n"
        "import bridge.rtsp.server, bridge.rtsp.session, bridge.cameras.registry\n"
        "print(sorted(m for m in sys.modules if m == 'av' or m.startswith(('av.', "
        "'bridge.media', 'bridge.simulator', 'bridge.onvif', 'bridge.web'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, bridge.media.source; print('av' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert loaded.stdout.strip() == "True"  # the probe above would see PyAV if it were loaded

"""An emulated HAMA IP camera (the OEM's Axis-like firmware on a GoAhead web server).

Follows "HAMA IP Camera CGI commands V1.1" and what that firmware family does around it:

- GoAhead answers HTTP/1.0, asks for Basic credentials in the realm "Internet Camera", and
  writes its error pages as ``Document Error`` HTML; ``/loginfree.jpg`` needs no credentials.
- ``param.cgi?action=list&group=G`` prints G itself and its direct children, Axis style; the
  Brand and image groups carry the ``root.`` prefix and the rest do not, and some Brand values
  start with a space, exactly as the document's examples show. An unknown group gets Axis's
  ``# Error: Error -1 getting param in group 'G'`` line.
- ``ptz.cgi``/``ptzconfig.cgi`` answer 204 when done, ``Error: ...`` text when not.
- ``/form/enet`` (the web UI's form handler) validates every ``enet_*`` field it knows, applies
  them and redirects (302) to the page named in ``enet_source``.
- The pan/tilt head moves one step per ``move=`` command and has eight server presets.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from bridge.cameras.base import AudioCodec, PtzGeometry, PtzVector
from bridge.simulator.core import (
    AudioHub,
    Presence,
    SimAuth,
    SimOptions,
    SimulatedCamera,
    jpeg_part,
    stream_multipart,
)

BOUNDARY = "myboundary"
VIDEO_CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
AUDIO_CONTENT_TYPE = "audio/basic"  # the firmware's label for its GSM 06.10 frames
PARAM_CONTENT_TYPE = "text/plain"
LOGIN_FREE_PATH = "/loginfree.jpg"

STEP_SIZE = 0.1  # normalized travel of one move= step
PRESET_SLOTS = 8
_STEPS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, 1),
    "down": (0, -1),
    "upleft": (-1, 1),
    "upright": (1, 1),
    "downleft": (-1, -1),
    "downright": (1, -1),
}

# What /form/enet accepts: field -> allowed values (the document's lists; pt speed 1..9 since the
# web page only offers the odd ones but the handler takes any level).
_FORM_FIELDS: dict[str, frozenset[str]] = {
    "enet_avs_flip_mode": frozenset("0123"),
    "enet_avs_pt_speed": frozenset("123456789"),
    "enet_avs_default_dual_mode": frozenset("01"),
    "enet_audio_enable": frozenset({"No", "Yes"}),
    "enet_audio_mic_vol": frozenset(str(v) for v in range(0, 101, 10)),
    "enet_audio_output_vol": frozenset(str(v) for v in range(0, 101, 10)),
}
_FORM_DEFAULTS = {
    "enet_avs_flip_mode": "0",
    "enet_avs_pt_speed": "5",
    "enet_avs_default_dual_mode": "0",
    "enet_audio_enable": "Yes",
    "enet_audio_mic_vol": "50",
    "enet_audio_output_vol": "50",
}
# Groups the firmware prints with the "root." prefix (the others come out bare).
_ROOTED_GROUPS = ("Brand.", "Properties.Image.", "Image.I0.Appearance.", "Image.I1.Appearance.")
_MJPEG_SIZES = ("1280x1024", "640x480", "320x240")
_MPEG4_SIZES = ("1024x768", "640x480", "320x240")


def _size_list(*sizes: str) -> str:
    """Resolutions as the firmware lists them: largest first, no repeats."""

    def pixels(size: str) -> int:
        width, _, height = size.partition("x")
        return int(width) * int(height)

    return ",".join(sorted(set(sizes), key=pixels, reverse=True))


@dataclass
class HamaSettings:
    """The unit's own settings, in the firmware's terms."""

    form: dict[str, str] = field(default_factory=lambda: dict(_FORM_DEFAULTS))
    presets: dict[int, tuple[str, PtzVector]] = field(default_factory=dict)


def _error_page(
    status: int, title: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """GoAhead's error page."""
    body = (
        f"<html><head><title>Document Error: {title}</title></head>\r\n"
        f"<body><h2>Access Error: {title}</h2>\r\n<p>{html.escape(message)}</p></body></html>\r\n"
    )
    return web.Response(status=status, text=body, content_type="text/html", headers=headers)


def _cgi_error(message: str) -> web.Response:
    return web.Response(text=f"Error: {message}\r\n", content_type=PARAM_CONTENT_TYPE)


def _done() -> web.Response:
    return web.Response(status=204)


def _in_group(name: str, group: str) -> bool:
    """Whether a listing of ``group`` shows ``name``: the group itself and its direct children."""
    child = name.removeprefix(group + ".")
    return bool(group) and (name == group or (child != name and "." not in child))


def _query(request: web.Request) -> dict[str, str]:
    """Query fields with names trimmed and lower-cased (the CGIs match them loosely)."""
    return {key.strip().lower(): value for key, value in request.query.items()}


class HamaSimulator(SimulatedCamera):
    dialect = "hama"
    server_header = "GoAhead-Webs"
    realm = "Internet Camera"
    # Its Axis-like firmware answered UPnP searches, under the OEM's name.
    presence = Presence("Hama GmbH & Co. KG", "IP - Cam M360", ssdp=True)
    auth_scheme = SimAuth.BASIC
    http10 = True
    relay_count = 0
    input_count = 0
    # 350 x 120 degrees of travel (STEP_SIZE of it per step), a 50 x 38 degree picture.
    head = PtzGeometry(350.0, 120.0, (50.0, 38.0))

    def __init__(self, options: SimOptions | None = None) -> None:
        super().__init__(options)
        self.settings = HamaSettings()
        self.audio = AudioHub(AudioCodec.GSM)

    def routes(self) -> Iterable[web.RouteDef]:
        return [
            web.get("/jpg/image.jpg", self._snapshot),
            web.get(LOGIN_FREE_PATH, self._snapshot),
            web.get("/mjpg/video.mjpg", self._video),
            web.get("/camera-cgi/audio/receive.cgi", self._audio),
            web.get("/camera-cgi/admin/param.cgi", self._param),
            web.get("/camera-cgi/com/ptz.cgi", self._ptz),
            web.get("/camera-cgi/com/ptzconfig.cgi", self._ptz_config),
            web.get("/form/enet", self._form),
            web.route("*", "/{tail:.*}", self._not_found),
        ]

    def is_public(self, request: web.Request) -> bool:
        return request.path == LOGIN_FREE_PATH

    def unauthorized(self, request: web.Request) -> web.StreamResponse:
        return _error_page(
            401,
            "Unauthorized",
            "Access to this document requires a User ID",
            {"WWW-Authenticate": f'Basic realm="{self.realm}"'},
        )

    # -- media ------------------------------------------------------------------------------

    async def _snapshot(self, request: web.Request) -> web.Response:
        return web.Response(body=await self.video.snapshot(), content_type="image/jpeg")

    async def _mjpeg_parts(self) -> AsyncIterator[bytes]:
        async for jpeg in self.video.frames():
            yield jpeg_part(BOUNDARY, jpeg)

    async def _video(self, request: web.Request) -> web.StreamResponse:
        return await stream_multipart(request, VIDEO_CONTENT_TYPE, self._mjpeg_parts())

    async def _audio(self, request: web.Request) -> web.StreamResponse:
        # Bare 33-byte frames one after another, no multipart framing, as the document shows.
        return await stream_multipart(request, AUDIO_CONTENT_TYPE, self.audio.chunks())

    # -- param.cgi ------------------------------------------------------------------------

    def params(self, http_port: int = 80) -> dict[str, str]:
        """The parameter tree as the firmware holds it (names without "root.")."""
        options, form = self.options, self.settings.form
        size = f"{options.width}x{options.height}"
        audio = "yes" if form["enet_audio_enable"] == "Yes" else "disabled"
        return {
            "Brand.Brand": "Hama GmbH & Co. KG",
            "Brand.ProdFullName": " Hama Wireless IP Camera",
            "Brand.ProdShortName": " IP - Cam M360",
            "Brand.ProdNbr": " 00053104",
            "Brand.ProdType": "Wireless Lan IP Camera",
            "Brand.WebURL": "http://www.hama.de/",
            "Properties.Image.FlipMode": "1",
            "Properties.Image.Resolution": _size_list(size, *_MJPEG_SIZES, *_MPEG4_SIZES),
            "Properties.Image.Format": "mjpeg,mpeg4",
            "Properties.Image.I0.FlipMode": "1",
            "Properties.Image.I0.Resolution": _size_list(size, *_MJPEG_SIZES),
            "Properties.Image.I0.Format": "mjpeg",
            "Properties.Image.I1.FlipMode": "1",
            "Properties.Image.I1.Resolution": _size_list(*_MPEG4_SIZES),
            "Properties.Image.I1.Format": "mpeg4",
            "Image.I0.Appearance.Resolution": size,
            "Image.I0.Appearance.Compression": "2",
            "Image.I1.Appearance.Resolution": "640x480",
            "Image.I1.Appearance.stats": "compression",
            "Image.I1.Appearance.compression": "7",
            "Image.I0.Stream.FPS": str(round(options.fps)),
            "Image.I1.Stream.FPS": "15",
            "Layout.DefaultVideoFormat": (
                "mpeg4" if form["enet_avs_default_dual_mode"] == "1" else "mjpeg"
            ),
            "Network.Interface.I0.Active.MACAddress": options.mac.upper(),
            "Properties.Firmware.Version": "v1.32",
            "Properties.Firmware.ModelID": "12",
            "Properties.Firmware.VendorID": "1",
            "System.HTTPPort": str(http_port),
            "System.PrivateVideoPort": "4321",
            "Properties.VideoServer.MaxUsers": "16",
            "Properties.VideoServer.CurrentUsers": "1",
            "Properties.Audio": audio,
            "Properties.Audio.TwoWayAudio": "yes",
            "Properties.Audio.AudioCodec": "GSM 06.10",
            "Properties.Audio.TwoWayAudioCodec": "GSM 06.10",
            "Properties.PTZ.PTZ": "yes",
        }

    async def _param(self, request: web.Request) -> web.Response:
        query = _query(request)
        action = query.get("action", "").strip()
        if action != "list":
            return web.Response(
                text=f"# Error: Unknown action '{action}'\r\n", content_type=PARAM_CONTENT_TYPE
            )
        group = "".join(query.get("group", "").split()).removeprefix("root.")
        tree = self.params(request.url.port or 80)
        lines = [
            f"{'root.' if name.startswith(_ROOTED_GROUPS) else ''}{name}={value}"
            for name, value in tree.items()
            if _in_group(name, group)
        ]
        if not lines:
            lines = [f"# Error: Error -1 getting param in group '{group}'"]
        return web.Response(text="\r\n".join(lines) + "\r\n", content_type=PARAM_CONTENT_TYPE)

    # -- PTZ ------------------------------------------------------------------------------

    def _slot(self, value: str | None) -> int | None:
        slot = int(value) if value is not None and value.strip().isdigit() else 0
        return slot if 1 <= slot <= PRESET_SLOTS else None

    async def _ptz(self, request: web.Request) -> web.Response:
        query, ptz = _query(request), self.state.ptz
        if "move" in query:
            move = query["move"].strip().lower()
            if move == "center":
                ptz.go_to(PtzVector())
            elif move in _STEPS:
                pan, tilt = _STEPS[move]
                ptz.step(PtzVector(pan * STEP_SIZE, tilt * STEP_SIZE))
            else:
                return _cgi_error(f"Invalid value '{move}' for parameter move")
            return _done()
        if "gotoserverpresetindex" in query:
            slot = self._slot(query["gotoserverpresetindex"])
            if slot is None or slot not in self.settings.presets:
                return _cgi_error(f"No preset point {query['gotoserverpresetindex']}")
            ptz.go_to(self.settings.presets[slot][1])
            return _done()
        return _cgi_error("No PTZ command given")

    async def _ptz_config(self, request: web.Request) -> web.Response:
        query, presets = _query(request), self.settings.presets
        slot = self._slot(query.get("presetno"))
        if "setserverpresetname" in query:
            name = query["setserverpresetname"].strip()
            if slot is None or not name:
                return _cgi_error(f"Need a preset name and presetNo 1..{PRESET_SLOTS}")
            presets[slot] = (name, self.state.ptz.position())
            return _done()
        if "removeserverpresetname" in query:
            name = query["removeserverpresetname"].strip()
            if slot is None:  # no number: the name alone picks the preset
                slot = next((s for s, (n, _) in presets.items() if name and n == name), None)
            if slot is None or slot not in presets:
                return _cgi_error(f"No preset point {name or query.get('presetno', '')}")
            del presets[slot]
            return _done()
        return _cgi_error("No PTZ configuration command given")

    # -- /form/enet -----------------------------------------------------------------------

    def _apply_form(self, fields: Mapping[str, str]) -> None:
        form = self.settings.form
        form.update(fields)
        mode = int(form["enet_avs_flip_mode"])
        self.state.flip = bool(mode & 1)  # 1: vertical mirror, i.e. upside down
        self.state.mirror = bool(mode & 2)  # 2: horizontal mirror, i.e. left-right

    async def _form(self, request: web.Request) -> web.Response:
        source = request.query.get("enet_source", "").strip()
        fields = {key: value.strip() for key, value in request.query.items() if key in _FORM_FIELDS}
        bad = [key for key, value in fields.items() if value not in _FORM_FIELDS[key]]
        if bad:
            return _error_page(400, "Bad Request", f"Invalid value for {', '.join(bad)}")
        if not source:
            return _error_page(400, "Bad Request", "enet_source is missing")
        self._apply_form(fields)
        location = f"http://{request.host}/{source.lstrip('/')}"
        return web.Response(
            status=302,
            reason="Redirect",
            text=(
                f'<html><head></head><body>\r\nThis document has moved to a new <a href="'
                f'{html.escape(location)}">location</a>.\r\n</body></html>\r\n'
            ),
            content_type="text/html",
            headers={"Location": location, "Pragma": "no-cache", "Cache-Control": "no-cache"},
        )

    async def _not_found(self, request: web.Request) -> web.Response:
        return _error_page(404, "Not Found", f"Cannot open URL {request.path}")

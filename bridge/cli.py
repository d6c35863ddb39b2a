"""Command line: argument parsing only; the work is done by the modules it calls.

Exit codes: 0 success, 1 a camera or runtime error, 2 bad usage or an invalid config.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge import __version__, commands
from bridge.cameras.base import Dialect
from bridge.discovery import lan
from bridge.errors import BridgeError, ConfigError
from bridge.logs import LOG_FORMATS, register_secret, setup_logging
from bridge.simulator.core import SimOptions

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def _log_format(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default=default, help="json: a JSON object a line"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge", description="Serve legacy HTTP/CGI IP cameras to ONVIF/RTSP VMS."
    )
    parser.add_argument("--version", action="version", version=f"bridge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    _log_format(parser, "text")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the gateway for the cameras in a config file")
    run.add_argument("--config", "-c", type=Path, required=True)
    _log_format(run, argparse.SUPPRESS)  # also after "run"; the default is the top level's
    run.add_argument(
        "--example-if-missing",
        action="store_true",
        help="when the config file does not exist, write a commented example there and exit 2",
    )

    health = sub.add_parser("healthcheck", help="exit 0 when the configured gateway serves")
    health.add_argument("--config", "-c", type=Path, required=True)

    demo = sub.add_parser("demo", help="run one emulated camera of each dialect and the gateway")
    demo.add_argument("--host", default="127.0.0.1", help="where the emulated cameras listen")
    demo.add_argument("--base-port", type=int, default=0, help="first emulator port (0 = any)")
    demo.add_argument("--rtsp-port", type=int, default=8554, help="the gateway's RTSP port")
    demo.add_argument("--web-port", type=int, default=8080, help="the gateway's snapshot port")
    demo.add_argument(
        "--onvif-base-port", type=int, default=8000, help="camera i's ONVIF port is this + i"
    )

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file", type=Path)

    probe = sub.add_parser("probe", help="identify a camera's dialect and print its details")
    probe.add_argument("url", help="the camera's HTTP root, http://HOST[:PORT]")
    probe.add_argument("--username", "-u", default=None)
    probe.add_argument("--password", "-p", default="")
    probe.add_argument("--name", default="", help="camera name for the printed config entry")

    discover = sub.add_parser(
        "discover",
        help="find legacy cameras (and ONVIF devices) on the LAN",
        description="Sweep address ranges for legacy cameras (HTTP fingerprinting) while "
        "listening to mDNS, SSDP and WS-Discovery; print what was found and a cameras: block.",
    )
    discover.add_argument(
        "targets",
        nargs="*",
        metavar="CIDR|HOST",
        help="ranges, addresses or host names to sweep (default: this machine's subnets)",
    )
    discover.add_argument("--username", "-u", default=None, help="also read device info")
    discover.add_argument("--password", "-p", default="")
    discover.add_argument(
        "--ports",
        type=_ports,
        default=lan.DEFAULT_PORTS,
        help="HTTP ports to sweep, comma-separated (default: "
        + ",".join(map(str, lan.DEFAULT_PORTS))
        + ")",
    )
    discover.add_argument("--json", action="store_true", help="print JSON for scripts")
    discover.add_argument(
        "--all", action="store_true", help="also list devices that are not cameras"
    )
    discover.add_argument(
        "--timeout",
        type=float,
        default=lan.DEFAULT_WAIT,
        help="seconds to listen for announcements; longest silence in a reply "
        "(default: %(default)s)",
    )
    discover.add_argument(
        "--concurrency", type=int, default=256, help="connections at once (default: 256)"
    )

    simulate = sub.add_parser("simulate", help="run an emulated legacy camera")
    simulate.add_argument("dialect", choices=[d.value for d in Dialect])
    simulate.add_argument("--port", type=int, required=True)
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--username", default="admin")
    simulate.add_argument("--password", default="admin")
    simulate.add_argument("--width", type=int, default=640)
    simulate.add_argument("--height", type=int, default=480)
    simulate.add_argument("--fps", type=float, default=10.0)

    return parser


def _ports(text: str) -> tuple[int, ...]:
    try:
        return lan.parse_ports(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO, json=args.log_format == "json")
    for secret in (getattr(args, "password", None),):
        if secret:
            register_secret(secret)

    try:
        if args.command == "check-config":
            return commands.check_config(args.file)
        if args.command == "probe":
            return asyncio.run(commands.probe(args.url, args.username, args.password, args.name))
        if args.command == "discover":
            return asyncio.run(
                commands.discover(
                    args.targets,
                    args.ports,
                    args.username,
                    args.password,
                    as_json=args.json,
                    show_all=args.all,
                    wait=args.timeout,
                    concurrency=args.concurrency,
                )
            )
        if args.command == "simulate":
            options = SimOptions(
                username=args.username,
                password=args.password,
                width=args.width,
                height=args.height,
                fps=args.fps,
            )
            return asyncio.run(
                commands.simulate(Dialect(args.dialect), args.host, args.port, options)
            )
        if args.command == "demo":
            return asyncio.run(
                commands.demo(
                    args.host, args.base_port, args.rtsp_port, args.web_port, args.onvif_base_port
                )
            )
        if args.command == "healthcheck":
            return asyncio.run(commands.healthcheck(args.config))
        if args.example_if_missing and not args.config.exists():
            commands.write_example_config(args.config)
        return asyncio.run(commands.run(args.config))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        # What the system refused at start: a port taken, an address this host does not have.
        print(f"error: cannot start: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK

"""``sibspine serve``: start the residents' web demo.

    sibspine serve [--case thoracic|...|DIR] [--variant pass|...] [--level T8] [--port N]
                   [--host 127.0.0.1] [--allow-remote] [--open-browser]

The server binds 127.0.0.1 unless another address is given together with ``--allow-remote``; it then prints a
warning, because the demo has no login and no encryption. ``--case`` is a built-in teaching case
(``review.demo.CASES``) or a DICOM-RT case folder (planning CT, RTSTRUCT, RTDOSE; RTPLAN and MR optional).

Start-up is ordered for a fast first frame: the views and the page are served first, then the case is built
(or read from the cache of built teaching cases) in a worker thread and put into the scene.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
import time
from pathlib import Path
from typing import List, Optional

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
REMOTE_WARNING = (
    "WARNING: serving on {host}:{port}, reachable from other machines. The demo has no login and no encryption: "
    "anyone who can reach this address sees the case. Never serve patient data this way."
)
_T_IMPORT = time.perf_counter()


class ServeError(ValueError):
    """A ``serve`` request that cannot be carried out as given."""


def seconds_since_process_start() -> float:
    """Wall time since this process started (Linux /proc), else since this module was imported."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = float(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _T_IMPORT


def check_address(host: str, port: int, allow_remote: bool) -> Optional[str]:
    """None for a loopback address; the warning to print for any other one when ``allow_remote`` is set."""
    if host in LOCAL_HOSTS:
        return None
    if not allow_remote:
        raise ServeError(
            f"--host {host}: the demo only binds 127.0.0.1 by default. Add --allow-remote to serve on another "
            "address (the case is then visible to anyone who can reach it; never use it with patient data)."
        )
    return REMOTE_WARNING.format(host=host, port=port)


def port_number(text: str) -> int:
    """argparse type of ``--port``: a TCP port 1-65535, or 0 for a free one."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535, or 0 for a free one)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number: give 1-65535 (or 0 for a free one)")
    return port


def check_port(host: str, port: int) -> None:
    """ServeError unless ``port`` can be bound on ``host`` now (a port in use, a privileged port, an address
    this machine does not have), said before trame starts rather than as its traceback."""
    if not 0 < port <= 65535:
        raise ServeError(f"--port {port}: give a port number from 1 to 65535 (or leave --port out for a free one).")
    address = "127.0.0.1" if host == "localhost" else host
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no clash
            s.bind((address, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            why = "is already in use (another server, or an earlier demo still running)"
            fix = "Stop that program, or choose another port with --port (or leave --port out for a free one)."
        elif exc.errno == errno.EACCES:
            why = "needs administrator rights (ports below 1024 are privileged)"
            fix = "Choose a port from 1024 to 65535 with --port (or leave --port out for a free one)."
        else:
            why = f"cannot be used ({exc.strerror or exc})"
            fix = "Check --host and --port (leave --port out for a free one)."
        raise ServeError(f"Port {port} on {host} {why}. {fix}") from None
    except OverflowError:
        raise ServeError(f"--port {port}: give a port number from 1 to 65535.") from None


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def resolve_case(case: str, variant: str):
    """("teaching", name) for a built-in case, ("dicom", Path) for a DICOM case folder."""
    from ...review.demo import CASES, VARIANTS

    if case in CASES:
        if variant not in VARIANTS:
            raise ServeError(f"--variant {variant}: choose one of {', '.join(VARIANTS)}.")
        return "teaching", case
    path = Path(case)
    if path.is_dir():
        return "dicom", path
    raise ServeError(f"--case {case}: neither a teaching case ({', '.join(CASES)}) nor a DICOM case folder.")


def serve(
    case: str = "thoracic",
    variant: str = "pass",
    host: str = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
    open_browser: bool = False,
    level: Optional[str] = None,
    protocol: Optional[str] = None,
    cache: bool = True,
) -> None:
    """Serve the demo until interrupted (port 0: a free port). The URL is printed once the server listens.
    ``cache``: keep built teaching cases in ``teaching.default_cache_dir()`` (they are deterministic)."""
    from concurrent.futures import ThreadPoolExecutor

    from ...protocol.model import load_protocol, normalise_level

    check_address(host, int(port), allow_remote)
    kind, what = resolve_case(case, variant)
    loaded_protocol = load_protocol(protocol)  # a bad protocol file or level is said here, before the server starts
    if level is not None:
        normalise_level(level)
    if int(port):
        port = int(port)
        check_port(host, port)  # a busy or forbidden port is said here, not as trame's traceback
    else:
        try:
            port = free_port(host if host != "localhost" else "127.0.0.1")
        except OSError as exc:
            raise ServeError(f"--host {host}: no port can be opened on this address ({exc.strerror or exc}).") from None
    warning = check_address(host, port, allow_remote)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sibspine-web")
    if "DISPLAY" not in os.environ and "WAYLAND_DISPLAY" not in os.environ:
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # headless: no X11 attempt
    # trame parses sys.argv itself (--host, --port, ...): the address checked above must be the only one used.
    sys.argv = sys.argv[:1]

    t_start = seconds_since_process_start()
    from ...review.teaching import default_cache_dir
    from .ui import InitialCase, WebReview

    t_imported = seconds_since_process_start()
    app = WebReview(
        executor,
        loaded_protocol,
        InitialCase(kind, what if kind == "teaching" else "dicom", variant, Path(what) if kind == "dicom" else None),
        default_cache_dir() if cache else None,
        level,
    )
    t_app = seconds_since_process_start()

    def _announce(**_):
        shown = f"[{host}]" if ":" in host else host
        if warning:
            print(warning, file=sys.stderr, flush=True)  # again, next to the address
        print(
            f"SIBSpineSBRT web demo: http://{shown}:{port}/  (Ctrl+C stops it)\n"
            f"[timing] listening {seconds_since_process_start():.2f} s after process start (Python start "
            f"{t_start:.2f} s, trame/VTK/slicer imports {t_imported - t_start:.2f} s, views and page "
            f"{t_app - t_imported:.2f} s)",
            flush=True,
        )

    app.server.controller.on_server_ready.add(_announce)
    try:
        app.server.start(host=host, port=port, open_browser=open_browser, show_connection_info=False)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sibspine serve",
        description="The residents' web demo: the plan review in a browser (trame-slicer).",
    )
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``sibspine serve`` (shared with the CLI's subcommand)."""
    p.add_argument(
        "--case",
        default="thoracic",
        help="a built-in teaching case (see --list-cases) or a DICOM-RT case folder (default: %(default)s)",
    )
    p.add_argument("--variant", default="pass", help="variant of a teaching case (default: %(default)s)")
    p.add_argument("--level", help="vertebral level of a DICOM case, when the RTPLAN label does not state it")
    p.add_argument("--protocol", default=None, help="shipped protocol id or a protocol JSON file")
    p.add_argument("--port", type=port_number, default=0, help="port 1-65535 (default: a free one, printed at start)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow an --host other than 127.0.0.1/localhost (prints a warning: no login, no encryption)",
    )
    p.add_argument(
        "--no-cache", action="store_true", help="rebuild the teaching case instead of reading the cached one"
    )
    p.add_argument("--open-browser", action="store_true", help="open the system browser on the demo")
    p.add_argument("--list-cases", action="store_true", help="print the teaching cases and variants, then exit")


def run(args) -> int:
    """Carry out parsed ``serve`` arguments; returns the exit code."""
    if args.list_cases:
        from ...review.demo import CASES, VARIANTS

        print(f"cases: {', '.join(CASES)}\nvariants: {', '.join(VARIANTS)}")
        return 0
    from ...protocol.model import ProtocolError

    try:
        serve(
            args.case,
            args.variant,
            args.host,
            args.port,
            args.allow_remote,
            args.open_browser,
            args.level,
            args.protocol,
            not args.no_cache,
        )
    except (ServeError, ProtocolError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run(build_parser().parse_args(argv))

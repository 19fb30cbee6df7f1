"""Command line: ``virgl-viewer [--headless] [--socket PATH] ...``."""

from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import sys
import threading
from typing import Any

from virgl_viewer import __version__, signals
from virgl_viewer.budgets import DEFAULT as DEFAULT_BUDGETS
from virgl_viewer.vtest.protocol import VTEST_DEFAULT_SOCKET_NAME

log = logging.getLogger("virgl_viewer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="virgl-viewer",
        description="A vtest server on libvirglrenderer that shows what virgl guests render.")
    p.add_argument("--headless", action="store_true",
                   help="serve clients without a GUI (no display needed)")
    p.add_argument("--socket", default=VTEST_DEFAULT_SOCKET_NAME, metavar="PATH",
                   help="vtest socket path (default %(default)s, where Mesa connects)")
    p.add_argument("--allow-uid", type=int, action="append", default=[], metavar="UID",
                   help="also serve clients of this uid (default: only our own uid)")
    p.add_argument("--snapshot-dir", metavar="DIR",
                   help="headless: write each scanout's newest frame as PNG there on "
                        "SIGUSR1 and at exit")
    p.add_argument("--stats-json", metavar="PATH",
                   help="headless: keep a JSON snapshot of clients, resources and fences "
                        "at PATH (replaced atomically, at most every 250 ms)")
    p.add_argument("--isolation", choices=["process", "shared"], default=None,
                   help="process: each client is served by a renderer process of its own "
                        "(a crash or load of one guest never reaches the others); shared: "
                        "every client in this process, GL contexts shared with the GUI's "
                        "(default: process with --headless, shared with the GUI)")
    p.add_argument("--warm-renderers", type=int, default=4, metavar="N",
                   help="--isolation process: renderer processes kept initialised for the "
                        "next clients (default %(default)s)")
    p.add_argument("--gui-nice", type=int, default=10, metavar="N",
                   help="GUI: run the GUI thread N nice levels below the render thread, "
                        "so that on a CPU-only host the guests' work comes before "
                        "showing it (0: the same priority; default %(default)s)")
    p.add_argument("--venus", action="store_true",
                   help="also serve Vulkan guests (Mesa's venus driver, VN_DEBUG=vtest): "
                        "virglrenderer runs their contexts in its virgl_render_server, "
                        "started with the viewer (needs libvirglrenderer 1.x built with "
                        "venus)")
    p.add_argument("--budget", action="append", default=[], metavar="NAME=VALUE",
                   help="change one of the limits a guest is held to (repeatable; sizes "
                        "take K, M or G; the README lists them: resources, shm_bytes, "
                        "reply_queue_bytes, sync_waits, ...)")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"], help="default %(default)s")
    p.add_argument("--install-desktop-entry", action="store_true",
                   help="add virgl-viewer to your application menu: write its desktop entry, "
                        "AppStream metainfo, icons and man pages under $XDG_DATA_HOME "
                        "(~/.local/share), then exit")
    p.add_argument("--uninstall-desktop-entry", action="store_true",
                   help="remove what --install-desktop-entry wrote, then exit")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def desktop_entry_command(args: argparse.Namespace) -> int:
    from virgl_viewer.desktop import data_home, install_desktop_entry, uninstall_desktop_entry

    home = data_home()
    if args.uninstall_desktop_entry:
        removed = uninstall_desktop_entry(home)
        log.info("removed %d files under %s", len(removed), home)
        return 0
    try:
        written = install_desktop_entry(home)
    except OSError as exc:
        log.error("cannot install the desktop entry under %s: %s", home, exc)
        return 1
    for path in written:
        log.info("wrote %s", path)
    return 0


def run_headless(args: argparse.Namespace) -> int:
    from virgl_viewer.egl import SurfacelessProvider
    from virgl_viewer.errors import VirglViewerError
    from virgl_viewer.server import RenderThread

    def provider_factory():  # type: ignore[no-untyped-def]
        p = SurfacelessProvider()
        return p, p.close

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    rt: Any
    if args.isolation == "process":
        from virgl_viewer.isolation import ProcessThread
        from virgl_viewer.worker import WorkerConfig

        cfg = WorkerConfig(budgets=args.budgets, venus=args.venus,
                           snapshot_dir=args.snapshot_dir, log_level=args.log_level)
        rt = ProcessThread(args.socket, cfg, allowed_uids=args.allow_uid,
                           budgets=args.budgets, pool_size=args.warm_renderers)
        if args.snapshot_dir:  # each worker writes its own client's, at exit too
            signal.signal(signal.SIGUSR1,
                          lambda *_: rt.call(lambda: rt.server and rt.server.snapshot_all()))
    else:
        rt = RenderThread(args.socket, provider_factory, allowed_uids=args.allow_uid,
                          venus=args.venus, budgets=args.budgets)
    if args.snapshot_dir and args.isolation != "process":
        from virgl_viewer.snapshots import SnapshotWriter

        snaps = SnapshotWriter(args.snapshot_dir)
        rt.on_ready = lambda server: server.add_observer(snaps)
        rt.on_stop = snaps.snapshot_all
        signal.signal(signal.SIGUSR1, lambda *_: rt.call(snaps.snapshot_all))
    registry = None
    if args.stats_json:
        from virgl_viewer.state import StateRegistry

        registry = StateRegistry()
        chained = rt.on_ready

        def on_ready(server):  # type: ignore[no-untyped-def]  # render thread
            if chained is not None:
                chained(server)
            registry.attach(server)

        rt.on_ready = on_ready
    try:
        rt.start()
    except VirglViewerError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot listen on %s: %s", args.socket, exc.strerror or exc)
        return 1
    writer = None
    if registry is not None:
        from virgl_viewer.stats_json import StatsJsonWriter

        writer = StatsJsonWriter(args.stats_json, registry,
                                 meta={"socket": os.path.abspath(args.socket),
                                       "isolation": args.isolation})
        try:
            writer.start()
        except OSError as exc:
            log.error("cannot write %s: %s", args.stats_json, exc.strerror or exc)
            rt.stop()
            return 1
    log.info("headless; stop with Ctrl-C or SIGTERM")
    while not stop.wait(0.5):
        pass
    log.info("shutting down")
    rt.stop()
    if writer is not None:
        writer.stop()  # the final state: every client disconnected
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.budgets = DEFAULT_BUDGETS.with_overrides(args.budget)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.install_desktop_entry or args.uninstall_desktop_entry:
        return desktop_entry_command(args)
    signals.unblock(signals.STOP_SIGNALS | {signal.SIGUSR1})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # every client costs fds
    if args.isolation is None:
        args.isolation = "process" if args.headless else "shared"
    if args.headless:
        return run_headless(args)
    from virgl_viewer.ui.app import run_gui

    return run_gui(args)


if __name__ == "__main__":
    sys.exit(main())

"""The .deb in a Debian 13 root, as a Debian user gets it: the source package builds with
dpkg-buildpackage from Debian packages only, lintian finds no error, apt installs it, it
serves a Mesa glxgears headless and shows the guest's scanout in its GUI under Xvfb, and
apt removes it without a trace.

Run by ``make test-deb`` (VV_TEST_DEB=1; root, network; about 3 minutes after the root
exists, 2 more to debootstrap it once). The root is packaging/roots/mkroot.sh's (cached
in ``$VV_DEB_ROOT``, default build/roots/trixie), copied afresh for every run so nothing
installed by an earlier run helps; every command runs in the copy through
packaging/roots/inroot.sh (a private /dev, never the host's).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO_ROOT
from support.png import png_image
from support.screen import Box, Image, colour_counts

pytestmark = [pytest.mark.slow, pytest.mark.mesa, pytest.mark.timeout(1800)]

PRISTINE = Path(os.environ.get("VV_DEB_ROOT", REPO_ROOT / "build" / "roots" / "trixie"))
ROOT = PRISTINE.with_name(PRISTINE.name + ".deb-test")  # a fresh copy for every run
MKROOT = REPO_ROOT / "packaging" / "roots" / "mkroot.sh"
INROOT = REPO_ROOT / "packaging" / "roots" / "inroot.sh"
WORK = "/srv/vv"  # the host's work dir, bound here in the root
APP_ID = "io.github.virglviewer.VirglViewer"
GEARS_BOX = Box(900, 700, 300, 300)  # glxgears' own window, away from the viewer's


def _changelog_version() -> str:
    first = (REPO_ROOT / "packaging" / "debian" / "changelog").read_text().splitlines()[0]
    match = re.match(r"virgl-viewer \((\S+)\)", first)
    assert match, first
    return match.group(1)


VERSION = _changelog_version()
UPSTREAM = VERSION.rsplit("-", 1)[0]
DEB = f"virgl-viewer_{VERSION}_amd64.deb"


STOP = """
stop() {  # stop NAME PID SIGNAL: signal it, wait up to 20 s, report how it ended
    kill -$3 $2 2>/dev/null || true
    for i in $(seq 200); do kill -0 $2 2>/dev/null || break; sleep 0.1; done
    if kill -0 $2 2>/dev/null; then echo "$1 did not exit"; kill -KILL $2; fi
    rc=0; wait $2 || rc=$?; echo "$1 exit $rc"
}
"""


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    """The host's work dir (build/deb-test, kept after a run for its logs)."""
    subprocess.run([str(MKROOT), "trixie", str(PRISTINE)], check=True, timeout=1800)
    subprocess.run(["rm", "-rf", "--one-file-system", str(ROOT)], check=True, timeout=300)
    subprocess.run(["cp", "-a", str(PRISTINE), str(ROOT)], check=True, timeout=300)
    where = REPO_ROOT / "build" / "deb-test"
    subprocess.run(["rm", "-rf", str(where)], check=True, timeout=120)
    where.mkdir(parents=True)
    subprocess.run([str(REPO_ROOT / "packaging" / "mkdebsrc.sh"), str(where)], check=True,
                   timeout=120, stdout=subprocess.DEVNULL)
    yield where


def inroot(work: Path, script: str, *, net: bool = True, timeout: float = 900
           ) -> subprocess.CompletedProcess[str]:
    """``bash -ec SCRIPT`` as root in the root, ``work`` at /srv/vv, output captured."""
    argv = [str(INROOT), *([] if net else ["--no-net"]), "--bind", f"{work}:{WORK}",
            str(ROOT), "bash", "-ec", f"export DEBIAN_FRONTEND=noninteractive; cd {WORK}\n"
            + STOP + script]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-6000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def test_source_package_builds_and_lintian_finds_no_error(work: Path) -> None:
    _ok(inroot(work, f"""
        apt-get update -q > apt-update.log
        apt-get install -y -q --no-install-recommends dpkg-dev lintian > tools.log
        cd virgl-viewer-{UPSTREAM}
        apt-get build-dep -y -q --no-install-recommends . > ../build-dep.log
        chown -R vv:vv {WORK}
        runuser -u vv -- dpkg-buildpackage -us -uc > ../build.log 2>&1 || {{
            tail -50 ../build.log; exit 1; }}
    """))
    for name in (f"virgl-viewer_{VERSION}.dsc", f"virgl-viewer_{UPSTREAM}.orig.tar.gz", DEB):
        assert (work / name).is_file(), name
    r = inroot(work, f"lintian --pedantic --info virgl-viewer_{VERSION}_amd64.changes")
    tags = re.findall(r"^([EWIPX]): (\S+(?: source)?): (\S+)", r.stdout, re.MULTILINE)
    counts = {k: sum(1 for t in tags if t[0] == k) for k in "EWIP"}
    print(f"\nlintian: {counts}: " + ", ".join(sorted({f'{k}:{t}' for k, _, t in tags})))
    assert counts["E"] == 0, r.stdout
    assert r.returncode == 0, r.stdout + r.stderr  # lintian fails on errors by default


def test_apt_installs_it_with_desktop_files_and_man_pages(work: Path) -> None:
    out = _ok(inroot(work, f"""
        apt-get install -y -q ./{DEB} > install.log
        apt-get install -y -q --no-install-recommends mesa-utils xvfb xauth \\
            libgl1-mesa-dri desktop-file-utils appstream man-db > tools2.log
        virgl-viewer --version
        virgl-guest --version
        desktop-file-validate /usr/share/applications/{APP_ID}.desktop
        appstreamcli validate --no-net /usr/share/metainfo/{APP_ID}.metainfo.xml
        test -f /usr/share/icons/hicolor/scalable/apps/{APP_ID}.svg
        test -f /usr/share/icons/hicolor/48x48/apps/{APP_ID}.png
        MANWIDTH=100 man virgl-viewer | grep -c -e '--socket'
        MANWIDTH=100 man virgl-guest | grep -c -e '--scanouts'
    """))
    assert f"virgl-viewer {UPSTREAM}\n" in out and f"virgl-guest {UPSTREAM}\n" in out
    assert "Validation was successful" in out




def test_headless_serves_mesa_glxgears(work: Path) -> None:
    out = _ok(inroot(work, f"""
        rm -rf snaps; cd /tmp
        virgl-viewer --headless --socket /tmp/vt.sock --snapshot-dir {WORK}/snaps \\
            > {WORK}/headless.log 2>&1 &
        viewer=$!
        for i in $(seq 100); do [ -S /tmp/vt.sock ] && break; sleep 0.1; done
        Xvfb :7 -screen 0 1280x1024x24 -nolisten tcp > xvfb.log 2>&1 &
        for i in $(seq 100); do [ -S /tmp/.X11-unix/X7 ] && break; sleep 0.1; done
        GALLIUM_DRIVER=virpipe LIBGL_ALWAYS_SOFTWARE=1 VTEST_SOCKET_NAME=/tmp/vt.sock \\
            DISPLAY=:7 glxgears > gears.log 2>&1 &
        gears=$!
        sleep 6  # glxgears reports its frames after 5 s
        kill -USR1 $viewer  # snapshot every scanout
        for i in $(seq 100); do ls {WORK}/snaps/*.png > /dev/null 2>&1 && break; sleep 0.1; done
        stop glxgears $gears INT
        stop viewer $viewer TERM
        cat gears.log
    """, net=False, timeout=120))
    log = (work / "headless.log").read_text()
    frames = [int(n) for n in re.findall(r"(\d+) frames in [\d.]+ seconds", out)]
    assert frames and frames[0] > 0, out + log
    assert "viewer exit 0" in out, out + log
    assert "Traceback" not in log, log
    (png, *_) = sorted((work / "snaps").glob("*.png"))
    counts = colour_counts(png_image(png))
    assert all(counts[c] > 200 for c in ("red", "green", "blue")), counts
    print(f"\nglxgears through the installed .deb, headless: {frames[0]} frames in 5 s")


def test_gui_under_xvfb_shows_the_guest(work: Path) -> None:
    b = GEARS_BOX
    out = _ok(inroot(work, f"""
        cd /tmp
        Xvfb :7 -screen 0 1280x1024x24 -nolisten tcp > xvfb.log 2>&1 &
        for i in $(seq 100); do [ -S /tmp/.X11-unix/X7 ] && break; sleep 0.1; done
        export DISPLAY=:7
        virgl-viewer --socket /tmp/vt.sock > {WORK}/gui.log 2>&1 &
        viewer=$!
        for i in $(seq 200); do [ -S /tmp/vt.sock ] && break; sleep 0.1; done
        GALLIUM_DRIVER=virpipe LIBGL_ALWAYS_SOFTWARE=1 VTEST_SOCKET_NAME=/tmp/vt.sock \\
            glxgears -geometry {b.w}x{b.h}+{b.x}+{b.y} > gears.log 2>&1 &
        gears=$!
        sleep 6
        timeout 60 python3 -c 'from PySide6.QtGui import QGuiApplication as A; a = A([]);
a.primaryScreen().grabWindow(0).save("{WORK}/gui.png")' || echo "screenshot failed"
        stop glxgears $gears INT
        stop viewer $viewer TERM
        cat gears.log
    """, net=False, timeout=180))
    log = (work / "gui.log").read_text()
    assert "viewer exit 0" in out, out + log
    assert "scanout 1 (resource" in log, log
    assert "Traceback" not in log, log
    from PySide6.QtGui import QImage

    shot = QImage(str(work / "gui.png")).convertToFormat(QImage.Format.Format_RGB888)
    rgb = bytes(shot.constBits())
    image = Image(shot.width(), shot.height(), rgb)
    # gears outside glxgears' own window: the viewer's scanout window and overview
    outside = colour_counts(image) - colour_counts(image, b)
    assert all(outside[c] > 200 for c in ("red", "green", "blue")), outside


def test_apt_removes_it(work: Path) -> None:
    out = _ok(inroot(work, f"""
        apt-get remove --purge -y -q virgl-viewer > remove.log
        for f in /usr/bin/virgl-viewer /usr/bin/virgl-guest \\
                 /usr/share/applications/{APP_ID}.desktop \\
                 /usr/share/metainfo/{APP_ID}.metainfo.xml \\
                 /usr/share/man/man1/virgl-viewer.1.gz \\
                 /usr/lib/python3/dist-packages/virgl_viewer; do
            if [ -e $f ]; then echo "left: $f"; fi
        done
        dpkg -s virgl-viewer > /dev/null 2>&1 && echo "still installed" || echo "gone"
    """))
    assert out.strip().splitlines()[-1] == "gone", out
    assert "left:" not in out, out

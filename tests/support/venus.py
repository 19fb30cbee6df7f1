"""Run Vulkan guests through Mesa's venus driver against a private vtest server.

A venus guest is an ordinary Vulkan program with Mesa's virtio ICD selected and its vtest
winsys on (``VN_DEBUG=vtest``), connecting to ``$VTEST_SOCKET_NAME``. The guests are
``vulkaninfo`` and our own ``build/vk_check`` (tests/vulkan/vk_check.c, built by ``make``),
which renders and computes a known result and checks it byte by byte.

``VN_PERF`` turns venus's feedback buffers off. They are device memory the guest maps
and polls (fence, semaphore, event and query status written by the GPU), and on a host
whose Vulkan driver is lavapipe and that has no /dev/udmabuf (no GPU render node either)
virgl_render_server can only export lavapipe's memory as an opaque memfd whose data
starts after Mesa's header page: no vtest server can hand that out for mapping
(upstream's refuses it, ours too). Without feedback, venus asks for those statuses over
its protocol instead. Mesa stays unmodified: this is its documented performance switch.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from support import REPO_ROOT

VK_CHECK = REPO_ROOT / "build" / "vk_check"
ICD_DIR = Path("/usr/share/vulkan/icd.d")


def _icd(driver: str) -> Path:
    """Mesa's ICD file of ``driver``: DRIVER_icd.json (Debian 13) or
    DRIVER_icd.x86_64.json (Debian 12); the first path when there is none."""
    found = sorted(ICD_DIR.glob(f"{driver}_icd*.json"))
    return found[0] if found else ICD_DIR / f"{driver}_icd.json"


VENUS_ICD = _icd("virtio")  # Mesa's venus (mesa-vulkan-drivers, Debian 13)
LAVAPIPE_ICD = _icd("lvp")
VN_PERF_NO_FEEDBACK = "no_fence_feedback,no_semaphore_feedback,no_event_feedback,no_query_feedback"
VENUS_DEVICE = "Virtio-GPU Venus"  # how venus names its device (vn_physical_device.c)
TIMEOUT_S = 120.0

_RESULT_RE = re.compile(r"^(render|compute): (\d+)/(\d+) (?:pixels|values) match$", re.M)
_RATE_RE = re.compile(r"^rate: ([\d.]+) iterations/s", re.M)
_DEVICE_RE = re.compile(r"^device: (.*) \(Vulkan [\d.]+\)$", re.M)


def venus_env(socket: str | os.PathLike[str], base: dict[str, str] | None = None
              ) -> dict[str, str]:
    """Environment for a venus guest of the server on ``socket``."""
    env = dict(os.environ if base is None else base)
    env.update({"VN_DEBUG": "vtest", "VTEST_SOCKET_NAME": str(socket),
                "VK_DRIVER_FILES": str(VENUS_ICD), "VN_PERF": VN_PERF_NO_FEEDBACK,
                "MESA_SHADER_CACHE_DISABLE": "true"})
    env.pop("VK_ICD_FILENAMES", None)
    return env


def lavapipe_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a Vulkan program on lavapipe directly (no server)."""
    env = dict(os.environ if base is None else base)
    # VK_ICD_FILENAMES too: the name Debian 12's loader (1.3.239) is sure to know
    env["VK_DRIVER_FILES"] = env["VK_ICD_FILENAMES"] = str(LAVAPIPE_ICD)
    for k in ("VN_DEBUG", "VTEST_SOCKET_NAME"):
        env.pop(k, None)
    return env


@dataclass(frozen=True)
class VkCheckResult:
    """What ``vk_check`` printed and its exit status."""

    returncode: int
    output: str

    @property
    def device(self) -> str | None:
        m = _DEVICE_RE.search(self.output)
        return m[1] if m else None

    def counts(self, what: str) -> tuple[int, int]:
        """(matching, total) of ``render`` (pixels) or ``compute`` (values)."""
        for m in _RESULT_RE.finditer(self.output):
            if m[1] == what:
                return int(m[2]), int(m[3])
        raise AssertionError(f"vk_check printed no {what} result:\n{self.output}")

    @property
    def rate(self) -> float:
        m = _RATE_RE.search(self.output)
        if m is None:
            raise AssertionError(f"vk_check printed no rate:\n{self.output}")
        return float(m[1])

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and self.output.rstrip().endswith("PASS")

    def assert_passed(self) -> None:
        """Every pixel and every value checked and right."""
        assert self.passed, f"vk_check failed ({self.returncode}):\n{self.output}"
        for what in ("render", "compute"):
            ok, total = self.counts(what)
            assert ok == total > 0, f"{what}: {ok}/{total}\n{self.output}"


def run_vk_check(env: dict[str, str], iterations: int = 1,
                 timeout: float = TIMEOUT_S) -> VkCheckResult:
    """Run ``vk_check`` to the end (``env``: venus_env or lavapipe_env)."""
    proc = subprocess.run([str(VK_CHECK), "--iterations", str(iterations)], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return VkCheckResult(proc.returncode, proc.stdout + proc.stderr)


class HeldVkCheck:
    """``vk_check --hold`` running: its objects exist until ``finish()``."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([str(VK_CHECK), "--hold"], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # blocks until it has checked its results
            self.lines.append(line)
            if line.strip() == "holding":
                return
        raise AssertionError("vk_check ended before holding:\n" + "".join(self.lines))

    def finish(self, timeout: float = TIMEOUT_S) -> VkCheckResult:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        with self.proc.stdout:
            rest = self.proc.stdout.read()
        rc = self.proc.wait(timeout)
        return VkCheckResult(rc, "".join(self.lines) + rest)


def vulkaninfo_devices(env: dict[str, str], timeout: float = TIMEOUT_S) -> list[str]:
    """The deviceName lines of ``vulkaninfo --summary`` (fails if it fails)."""
    proc = subprocess.run(["vulkaninfo", "--summary"], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"vulkaninfo failed ({proc.returncode}):\n{proc.stdout}\n" \
                                 f"{proc.stderr}"
    return [line.split("=", 1)[1].strip() for line in proc.stdout.splitlines()
            if line.strip().startswith("deviceName")]

"""Real Vulkan guests through Mesa's venus: vulkaninfo and our vk_check.

vk_check renders a known pattern offscreen and runs a compute dispatch, reads both back
(through occlusion queries: see tests/vulkan/vk_check.c) and checks every pixel and every
value. It must pass through our server and through upstream's ``virgl_test_server
--venus`` in the same run, alone and two at once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from support.servers import Server
from support.venus import VENUS_DEVICE, run_vk_check, venus_env, vulkaninfo_devices


def test_vulkaninfo_reports_the_venus_device(ours_venus: Server) -> None:
    devices = vulkaninfo_devices(venus_env(ours_venus.socket_path))
    assert len(devices) == 1 and devices[0].startswith(VENUS_DEVICE), devices
    assert ours_venus.log_problems() == []


def test_vk_check_passes_through_ours_and_upstream(ours_venus: Server,
                                                   upstream_venus: Server) -> None:
    for server in (ours_venus, upstream_venus):
        result = run_vk_check(venus_env(server.socket_path), iterations=3)
        result.assert_passed()
        assert result.device is not None and result.device.startswith(VENUS_DEVICE)
        assert result.counts("render") == (768, 768)
        assert result.counts("compute") == (1024, 1024)
    assert ours_venus.log_problems() == []


def test_two_venus_guests_at_once_each_get_their_own_results(ours_venus: Server) -> None:
    """Two Vulkan guests side by side: contexts, blobs and queues of one never meet the
    other's; each checks every one of its own pixels and values."""
    env = venus_env(ours_venus.socket_path)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_vk_check(env, iterations=5), range(2)))
    for r in results:
        r.assert_passed()
    assert ours_venus.log_problems() == []

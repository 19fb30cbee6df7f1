"""The venus tests' Vulkan program checks itself right on lavapipe directly (both lanes).

``build/vk_check`` (tests/vulkan/vk_check.c) is the guest of the venus tests and bench;
here it runs on the host's own Vulkan driver, no server between, so that a venus failure
is never a bug of the program's.
"""

from __future__ import annotations

from support.venus import LAVAPIPE_ICD, VK_CHECK, lavapipe_env, run_vk_check


def test_vk_check_passes_on_lavapipe() -> None:
    assert VK_CHECK.exists(), "`make setup` builds build/vk_check"
    assert LAVAPIPE_ICD.exists(), "mesa-vulkan-drivers (lavapipe) is needed"
    result = run_vk_check(lavapipe_env(), iterations=2)
    result.assert_passed()
    assert result.device is not None and result.device.startswith("llvmpipe")
    assert result.counts("render") == (768, 768)
    assert result.counts("compute") == (1024, 1024)

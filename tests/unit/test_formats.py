"""The virgl format table (virglrenderer src/virgl_hw.h) and resource size estimates."""

from __future__ import annotations

import pytest

from virgl_viewer import formats as fmt


def test_ids_and_names_are_unique_and_cover_the_enum() -> None:
    names = [info.name for info in fmt.FORMATS.values()]
    assert len(names) == len(set(names))
    assert all(fid == info.id for fid, info in fmt.FORMATS.items())
    # enum virgl_formats in virglrenderer dc039d9: 0..321 minus the unused ids.
    assert sorted(fmt.FORMATS) == [i for i in range(322)
                                 if i not in (73, 78, 79, 80, 81, 86, 307, 309, 310)]


@pytest.mark.parametrize(("fid", "name"), [
    (0, "NONE"), (1, "B8G8R8A8_UNORM"), (2, "B8G8R8X8_UNORM"), (3, "A8R8G8B8_UNORM"),
    (4, "X8R8G8B8_UNORM"), (7, "B5G6R5_UNORM"), (19, "Z24_UNORM_S8_UINT"),
    (31, "R32G32B32A32_FLOAT"), (64, "R8_UNORM"), (67, "R8G8B8A8_UNORM"),
    (68, "X8B8G8R8_UNORM"), (72, "R8G8B8A8_USCALED"), (74, "R8_SNORM"),
    (100, "B8G8R8A8_SRGB"), (105, "DXT1_RGB"), (121, "A8B8G8R8_UNORM"),
    (134, "R8G8B8X8_UNORM"), (166, "NV12"), (230, "R8G8B8X8_SRGB"), (259, "A8L8_UNORM"),
    (262, "A16L16_UNORM"), (266, "G16R16_SNORM"), (279, "ASTC_4x4"),
    (306, "ASTC_12x12_SRGB"), (308, "R10G10B10X2_UNORM"), (311, "A4B4G4R4_UNORM"),
    (321, "R5G6B5_UNORM"),
])
def test_known_ids(fid: int, name: str) -> None:
    assert fmt.format_name(fid) == name
    assert fmt.format_id(name) == fid
    assert fmt.format_id("VIRGL_FORMAT_" + name) == fid


def test_unknown_ids_and_aliases() -> None:
    assert fmt.format_name(73) == "UNKNOWN(73)"
    assert fmt.format_name(322) == "UNKNOWN(322)"
    assert fmt.format_info(73) is None
    with pytest.raises(ValueError, match="unknown virgl format 73"):
        fmt.bytes_per_block(73)
    assert fmt.channel_order(9999) is None
    # virgl_hw.h declares 262-266 twice; the host's u_format.csv keeps the first names.
    assert fmt.format_id("A1B5G5R5_UNORM") == 262
    assert fmt.format_id("A4R4G4B4_UNORM") == 266
    with pytest.raises(KeyError):
        fmt.format_id("NOT_A_FORMAT")


@pytest.mark.parametrize(("name", "size", "bw", "bh"), [
    ("B8G8R8A8_UNORM", 4, 1, 1), ("B8G8R8X8_UNORM", 4, 1, 1), ("R8G8B8A8_UNORM", 4, 1, 1),
    ("A8B8G8R8_UNORM", 4, 1, 1), ("B5G6R5_UNORM", 2, 1, 1), ("R8G8B8_UNORM", 3, 1, 1),
    ("L8A8_UNORM", 2, 1, 1), ("R16G16B16A16_FLOAT", 8, 1, 1),
    ("R32G32B32A32_FLOAT", 16, 1, 1), ("R64G64B64A64_FLOAT", 32, 1, 1),
    ("R11G11B10_FLOAT", 4, 1, 1), ("R9G9B9E5_FLOAT", 4, 1, 1), ("B2G3R3_UNORM", 1, 1, 1),
    ("Z16_UNORM", 2, 1, 1), ("Z24_UNORM_S8_UINT", 4, 1, 1), ("S8_UINT", 1, 1, 1),
    ("Z32_FLOAT_S8X24_UINT", 8, 1, 1), ("X32_S8X24_UINT", 8, 1, 1),
    ("R8SG8SB8UX8U_NORM", 4, 1, 1), ("R5SG5SB6U_NORM", 2, 1, 1), ("R8G8Bx_SNORM", 2, 1, 1),
    ("R1_UNORM", 1, 8, 1), ("UYVY", 4, 2, 1), ("G8R8_B8R8_UNORM", 4, 2, 1),
    ("NV12", 6, 2, 2), ("YV16", 4, 2, 1), ("P010", 12, 2, 2),
    ("DXT1_RGB", 8, 4, 4), ("DXT5_SRGBA", 16, 4, 4), ("RGTC1_SNORM", 8, 4, 4),
    ("LATC2_UNORM", 16, 4, 4), ("ETC1_RGB8", 8, 4, 4), ("ETC2_RGB8A1", 8, 4, 4),
    ("ETC2_RGBA8", 16, 4, 4), ("ETC2_RG11_SNORM", 16, 4, 4), ("BPTC_RGB_FLOAT", 16, 4, 4),
    ("ASTC_12x10", 16, 12, 10), ("ASTC_5x4_SRGB", 16, 5, 4),
])
def test_block_sizes(name: str, size: int, bw: int, bh: int) -> None:
    # Values from virglrenderer's src/gallium/auxiliary/util/u_format.csv (block w, h and
    # the sum of channel bits), planar YUV as a block covering every plane.
    info = fmt.FORMATS[fmt.format_id(name)]
    assert (info.bytes_per_block, info.block_width, info.block_height) == (size, bw, bh)
    assert fmt.bytes_per_block(info.id) == size


def test_every_format_has_a_size() -> None:
    for info in fmt.FORMATS.values():
        assert info.block_width >= 1 and info.block_height >= 1
        assert info.bytes_per_block > 0 or info.name == "NONE"
        assert info.is_compressed == (info.kind == "compressed")


@pytest.mark.parametrize(("fid", "order", "alpha", "srgb"), [
    (1, "BGRA", True, False), (2, "BGRX", False, False), (3, "ARGB", True, False),
    (4, "XRGB", False, False), (67, "RGBA", True, False), (68, "XBGR", False, False),
    (121, "ABGR", True, False), (134, "RGBX", False, False),
    (98, "ABGR", True, True), (99, "XBGR", False, True), (100, "BGRA", True, True),
    (101, "BGRX", False, True), (102, "ARGB", True, True), (103, "XRGB", False, True),
    (104, "RGBA", True, True), (230, "RGBX", False, True), (66, "RGB", False, False),
    (317, "BGR", False, False), (12, "LA", True, False), (64, "R", False, False),
])
def test_rgba8_family_channel_order(fid: int, order: str, alpha: bool, srgb: bool) -> None:
    info = fmt.FORMATS[fid]
    assert fmt.channel_order(fid) == info.channel_order == order
    assert (info.has_alpha, info.is_srgb) == (alpha, srgb)


def test_flags() -> None:
    info = fmt.FORMATS
    assert fmt.channel_order(7) is None  # packed B5G6R5: not a byte order
    assert fmt.channel_order(19) is None  # depth/stencil
    assert (info[19].is_depth, info[19].is_stencil) == (True, True)
    assert (info[18].is_depth, info[18].is_stencil) == (True, False)
    assert (info[23].is_depth, info[23].is_stencil) == (False, True)
    assert not info[2].is_depth and not info[2].has_alpha
    assert info[11].has_alpha  # I8: intensity is replicated to alpha
    assert not info[105].has_alpha and info[106].has_alpha  # DXT1_RGB vs DXT1_RGBA
    assert info[105].is_compressed and info[110].is_srgb
    assert not info[277].has_alpha and info[273].has_alpha  # ETC2_RG11 vs ETC2_RGBA8
    assert info[279].has_alpha and not info[279].is_srgb and info[293].is_srgb


def test_estimate_2d_display_target() -> None:
    # glxgears' 300x300 B8G8R8X8 display target (FACTS.md): 300 * 300 * 4.
    assert fmt.estimate_resource_bytes(fmt.PIPE_TEXTURE_2D, 2, 300, 300, 1, 1, 0, 0) == 360000


def test_estimate_mip_chains() -> None:
    rgba = fmt.format_id("R8G8B8A8_UNORM")
    full = sum(4 * (256 >> lvl) ** 2 for lvl in range(9))
    assert fmt.estimate_resource_bytes(fmt.PIPE_TEXTURE_2D, rgba, 256, 256, 1, 1, 8, 0) == full
    # 5x3: levels 5x3, 2x1, 1x1 (minify never goes below 1)
    assert fmt.estimate_resource_bytes(fmt.PIPE_TEXTURE_2D, rgba, 5, 3, 1, 1, 2, 0) == 18 * 4
    # 3D: depth is minified with the level
    assert (fmt.estimate_resource_bytes(fmt.PIPE_TEXTURE_3D, rgba, 8, 8, 8, 1, 3, 0)
            == 4 * (512 + 64 + 8 + 1))
    # cube: always 6 faces; arrays: array_size layers per level
    assert fmt.estimate_resource_bytes(fmt.PIPE_TEXTURE_CUBE, rgba, 16, 16, 1, 6, 0, 0) == 6144
    assert fmt.estimate_resource_bytes(fmt.PIPE_TEXTURE_2D_ARRAY, rgba, 4, 4, 1, 3, 1, 0) == (
        3 * 4 * (16 + 4))
    assert fmt.estimate_resource_bytes(fmt.PIPE_TEXTURE_1D, rgba, 64, 1, 1, 1, 6, 0) == 4 * 127


def test_estimate_blocks_samples_and_buffers() -> None:
    dxt1 = fmt.format_id("DXT1_RGB")
    assert fmt.estimate_resource_bytes(fmt.PIPE_TEXTURE_2D, dxt1, 10, 10, 1, 1, 0, 0) == 9 * 8
    assert fmt.estimate_resource_bytes(fmt.PIPE_TEXTURE_2D, 2, 10, 10, 1, 1, 0, 4) == 1600
    # PIPE_BUFFER: width is the size in bytes, whatever the format
    assert fmt.estimate_resource_bytes(fmt.PIPE_BUFFER, 64, 4096, 1, 1, 1, 0, 0) == 4096
    assert fmt.estimate_resource_bytes(fmt.PIPE_BUFFER, 31, 8, 1, 1, 1, 0, 0) == 8
    assert fmt.estimate_resource_bytes(fmt.PIPE_TEXTURE_2D, 2, 0, 0, 0, 0, 0, 0) == 4
    with pytest.raises(ValueError, match="unknown virgl format"):
        fmt.estimate_resource_bytes(fmt.PIPE_TEXTURE_2D, 73, 4, 4, 1, 1, 0, 0)

"""The virgl format enum, described well enough to size and show a resource.

Why: resources arrive as bare numbers (`RESOURCE_CREATE2(..., format=2, ...)`); the inspector
wants a name, the server wants a size estimate, and the viewer must know how to swizzle the
bytes of a scanout (BGRX vs RGBA, sRGB or not, alpha or ignored).

How: ids and names mirror `enum virgl_formats` in virglrenderer's `src/virgl_hw.h`
(utmapp/virglrenderer dc039d9, the header matching the 0.10.4 we build against). Ids
262-266 are declared twice there (`A16L16_UNORM`/`A1B5G5R5_UNORM`, ...); the host's
`u_format.csv` and newer Mesa keep the first names, so those are the names here and the
second spellings are accepted as aliases by `format_id`. Sizes and flags are derived from
the gallium name (which spells channels and bit widths, in memory order for 8-bit array
formats) plus a short list of block formats; they agree with `u_format.csv` for every format
that file describes. Planar YUV formats use a virtual block covering all planes
(NV12: 2x2 pixels = 6 bytes) so that sizes come out right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

__all__ = [
    "FORMATS",
    "PIPE_BUFFER",
    "PIPE_TEXTURE_1D",
    "PIPE_TEXTURE_1D_ARRAY",
    "PIPE_TEXTURE_2D",
    "PIPE_TEXTURE_2D_ARRAY",
    "PIPE_TEXTURE_3D",
    "PIPE_TEXTURE_CUBE",
    "PIPE_TEXTURE_CUBE_ARRAY",
    "PIPE_TEXTURE_RECT",
    "FormatInfo",
    "bytes_per_block",
    "channel_order",
    "estimate_resource_bytes",
    "format_id",
    "format_info",
    "format_name",
]

# enum pipe_texture_target (virglrenderer src/gallium/include/pipe/p_defines.h)
PIPE_BUFFER = 0
PIPE_TEXTURE_1D = 1
PIPE_TEXTURE_2D = 2
PIPE_TEXTURE_3D = 3
PIPE_TEXTURE_CUBE = 4
PIPE_TEXTURE_RECT = 5
PIPE_TEXTURE_1D_ARRAY = 6
PIPE_TEXTURE_2D_ARRAY = 7
PIPE_TEXTURE_CUBE_ARRAY = 8

# enum virgl_formats, as runs of consecutive ids: (first id, names). Gaps: 73, 78-81, 86,
# 307, 309, 310 (unused upstream).
_RUNS: tuple[tuple[int, str], ...] = (
    (0, "NONE B8G8R8A8_UNORM B8G8R8X8_UNORM A8R8G8B8_UNORM"),
    (4, "X8R8G8B8_UNORM B5G5R5A1_UNORM B4G4R4A4_UNORM B5G6R5_UNORM"),
    (8, "R10G10B10A2_UNORM L8_UNORM A8_UNORM I8_UNORM"),
    (12, "L8A8_UNORM L16_UNORM UYVY YUYV"),
    (16, "Z16_UNORM Z32_UNORM Z32_FLOAT Z24_UNORM_S8_UINT"),
    (20, "S8_UINT_Z24_UNORM Z24X8_UNORM X8Z24_UNORM S8_UINT"),
    (24, "R64_FLOAT R64G64_FLOAT R64G64B64_FLOAT R64G64B64A64_FLOAT"),
    (28, "R32_FLOAT R32G32_FLOAT R32G32B32_FLOAT R32G32B32A32_FLOAT"),
    (32, "R32_UNORM R32G32_UNORM R32G32B32_UNORM R32G32B32A32_UNORM"),
    (36, "R32_USCALED R32G32_USCALED R32G32B32_USCALED R32G32B32A32_USCALED"),
    (40, "R32_SNORM R32G32_SNORM R32G32B32_SNORM R32G32B32A32_SNORM"),
    (44, "R32_SSCALED R32G32_SSCALED R32G32B32_SSCALED R32G32B32A32_SSCALED"),
    (48, "R16_UNORM R16G16_UNORM R16G16B16_UNORM R16G16B16A16_UNORM"),
    (52, "R16_USCALED R16G16_USCALED R16G16B16_USCALED R16G16B16A16_USCALED"),
    (56, "R16_SNORM R16G16_SNORM R16G16B16_SNORM R16G16B16A16_SNORM"),
    (60, "R16_SSCALED R16G16_SSCALED R16G16B16_SSCALED R16G16B16A16_SSCALED"),
    (64, "R8_UNORM R8G8_UNORM R8G8B8_UNORM R8G8B8A8_UNORM"),
    (68, "X8B8G8R8_UNORM R8_USCALED R8G8_USCALED R8G8B8_USCALED"),
    (72, "R8G8B8A8_USCALED"),
    (74, "R8_SNORM R8G8_SNORM R8G8B8_SNORM R8G8B8A8_SNORM"),
    (82, "R8_SSCALED R8G8_SSCALED R8G8B8_SSCALED R8G8B8A8_SSCALED"),
    (87, "R32_FIXED R32G32_FIXED R32G32B32_FIXED R32G32B32A32_FIXED"),
    (91, "R16_FLOAT R16G16_FLOAT R16G16B16_FLOAT R16G16B16A16_FLOAT"),
    (95, "L8_SRGB L8A8_SRGB R8G8B8_SRGB A8B8G8R8_SRGB"),
    (99, "X8B8G8R8_SRGB B8G8R8A8_SRGB B8G8R8X8_SRGB A8R8G8B8_SRGB"),
    (103, "X8R8G8B8_SRGB R8G8B8A8_SRGB DXT1_RGB DXT1_RGBA"),
    (107, "DXT3_RGBA DXT5_RGBA DXT1_SRGB DXT1_SRGBA"),
    (111, "DXT3_SRGBA DXT5_SRGBA RGTC1_UNORM RGTC1_SNORM"),
    (115, "RGTC2_UNORM RGTC2_SNORM R8G8_B8G8_UNORM G8R8_G8B8_UNORM"),
    (119, "R8SG8SB8UX8U_NORM R5SG5SB6U_NORM A8B8G8R8_UNORM B5G5R5X1_UNORM"),
    (123, "R10G10B10A2_USCALED R11G11B10_FLOAT R9G9B9E5_FLOAT"),
    (126, "Z32_FLOAT_S8X24_UINT R1_UNORM R10G10B10X2_USCALED R10G10B10X2_SNORM"),
    (130, "L4A4_UNORM B10G10R10A2_UNORM R10SG10SB10SA2U_NORM R8G8Bx_SNORM"),
    (134, "R8G8B8X8_UNORM B4G4R4X4_UNORM X24S8_UINT S8X24_UINT"),
    (138, "X32_S8X24_UINT B2G3R3_UNORM L16A16_UNORM A16_UNORM"),
    (142, "I16_UNORM LATC1_UNORM LATC1_SNORM LATC2_UNORM"),
    (146, "LATC2_SNORM A8_SNORM L8_SNORM L8A8_SNORM"),
    (150, "I8_SNORM A16_SNORM L16_SNORM L16A16_SNORM"),
    (154, "I16_SNORM A16_FLOAT L16_FLOAT L16A16_FLOAT"),
    (158, "I16_FLOAT A32_FLOAT L32_FLOAT L32A32_FLOAT"),
    (162, "I32_FLOAT YV12 YV16 IYUV"),
    (166, "NV12 NV21 A4R4_UNORM R4A4_UNORM"),
    (170, "R8A8_UNORM A8R8_UNORM R10G10B10A2_SSCALED R10G10B10A2_SNORM"),
    (174, "B10G10R10A2_USCALED B10G10R10A2_SSCALED B10G10R10A2_SNORM R8_UINT"),
    (178, "R8G8_UINT R8G8B8_UINT R8G8B8A8_UINT R8_SINT"),
    (182, "R8G8_SINT R8G8B8_SINT R8G8B8A8_SINT R16_UINT"),
    (186, "R16G16_UINT R16G16B16_UINT R16G16B16A16_UINT R16_SINT"),
    (190, "R16G16_SINT R16G16B16_SINT R16G16B16A16_SINT R32_UINT"),
    (194, "R32G32_UINT R32G32B32_UINT R32G32B32A32_UINT R32_SINT"),
    (198, "R32G32_SINT R32G32B32_SINT R32G32B32A32_SINT A8_UINT"),
    (202, "I8_UINT L8_UINT L8A8_UINT A8_SINT"),
    (206, "I8_SINT L8_SINT L8A8_SINT A16_UINT"),
    (210, "I16_UINT L16_UINT L16A16_UINT A16_SINT"),
    (214, "I16_SINT L16_SINT L16A16_SINT A32_UINT"),
    (218, "I32_UINT L32_UINT L32A32_UINT A32_SINT"),
    (222, "I32_SINT L32_SINT L32A32_SINT B10G10R10A2_UINT"),
    (226, "ETC1_RGB8 R8G8_R8B8_UNORM G8R8_B8R8_UNORM R8G8B8X8_SNORM"),
    (230, "R8G8B8X8_SRGB R8G8B8X8_UINT R8G8B8X8_SINT B10G10R10X2_UNORM"),
    (234, "R16G16B16X16_UNORM R16G16B16X16_SNORM R16G16B16X16_FLOAT"),
    (237, "R16G16B16X16_UINT R16G16B16X16_SINT R32G32B32X32_FLOAT"),
    (240, "R32G32B32X32_UINT R32G32B32X32_SINT R8A8_SNORM R16A16_UNORM"),
    (244, "R16A16_SNORM R16A16_FLOAT R32A32_FLOAT R8A8_UINT"),
    (248, "R8A8_SINT R16A16_UINT R16A16_SINT R32A32_UINT"),
    (252, "R32A32_SINT R10G10B10A2_UINT B5G6R5_SRGB BPTC_RGBA_UNORM"),
    (256, "BPTC_SRGBA BPTC_RGB_FLOAT BPTC_RGB_UFLOAT A8L8_UNORM"),
    (260, "A8L8_SNORM A8L8_SRGB A16L16_UNORM G8R8_UNORM"),
    (264, "G8R8_SNORM G16R16_UNORM G16R16_SNORM A8B8G8R8_SNORM"),
    (268, "X8B8G8R8_SNORM ETC2_RGB8 ETC2_SRGB8 ETC2_RGB8A1"),
    (272, "ETC2_SRGB8A1 ETC2_RGBA8 ETC2_SRGBA8 ETC2_R11_UNORM"),
    (276, "ETC2_R11_SNORM ETC2_RG11_UNORM ETC2_RG11_SNORM ASTC_4x4"),
    (280, "ASTC_5x4 ASTC_5x5 ASTC_6x5 ASTC_6x6"),
    (284, "ASTC_8x5 ASTC_8x6 ASTC_8x8 ASTC_10x5"),
    (288, "ASTC_10x6 ASTC_10x8 ASTC_10x10 ASTC_12x10"),
    (292, "ASTC_12x12 ASTC_4x4_SRGB ASTC_5x4_SRGB ASTC_5x5_SRGB"),
    (296, "ASTC_6x5_SRGB ASTC_6x6_SRGB ASTC_8x5_SRGB ASTC_8x6_SRGB"),
    (300, "ASTC_8x8_SRGB ASTC_10x5_SRGB ASTC_10x6_SRGB ASTC_10x8_SRGB"),
    (304, "ASTC_10x10_SRGB ASTC_12x10_SRGB ASTC_12x12_SRGB"),
    (308, "R10G10B10X2_UNORM"),
    (311, "A4B4G4R4_UNORM R8_SRGB R8G8_SRGB P010"),
    (315, "P012 P016 B8G8R8_UNORM R3G3B2_UNORM"),
    (319, "R4G4B4A4_UNORM R5G5B5A1_UNORM R5G6B5_UNORM"),
)

# Second spellings of ids 262-266 in virgl_hw.h (the first spelling wins, see above).
_ALIASES = {
    "A1B5G5R5_UNORM": 262,
    "A1R5G5B5_UNORM": 263,
    "A2B10G10R10_UNORM": 264,
    "A2R10G10B10_UNORM": 265,
    "A4R4G4B4_UNORM": 266,
}

# Formats whose name does not spell their size: name -> (bytes, block w, block h, kind).
_BLOCKS: dict[str, tuple[int, int, int, str]] = {
    **{n: (4, 2, 1, "subsampled") for n in (
        "UYVY", "YUYV", "R8G8_B8G8_UNORM", "G8R8_G8B8_UNORM", "R8G8_R8B8_UNORM",
        "G8R8_B8R8_UNORM")},
    **{n: (6, 2, 2, "planar") for n in ("YV12", "IYUV", "NV12", "NV21")},
    "YV16": (4, 2, 1, "planar"),
    **{n: (12, 2, 2, "planar") for n in ("P010", "P012", "P016")},
    "R1_UNORM": (1, 8, 1, "other"),
    "R8G8Bx_SNORM": (2, 1, 1, "other"),
    "R8SG8SB8UX8U_NORM": (4, 1, 1, "plain"),
    "R5SG5SB6U_NORM": (2, 1, 1, "plain"),
    "R10SG10SB10SA2U_NORM": (4, 1, 1, "plain"),
    "ETC1_RGB8": (8, 4, 4, "compressed"),
    "ETC2_RGB8": (8, 4, 4, "compressed"),
    "ETC2_SRGB8": (8, 4, 4, "compressed"),
    "ETC2_RGB8A1": (8, 4, 4, "compressed"),
    "ETC2_SRGB8A1": (8, 4, 4, "compressed"),
    "ETC2_R11_UNORM": (8, 4, 4, "compressed"),
    "ETC2_R11_SNORM": (8, 4, 4, "compressed"),
}
# Compressed families with one block size: name prefix -> bytes per 4x4 block.
_BLOCK_PREFIXES = {"DXT1_": 8, "DXT3_": 16, "DXT5_": 16, "RGTC1_": 8, "RGTC2_": 16,
                   "LATC1_": 8, "LATC2_": 16, "BPTC_": 16, "ETC2_": 16}
_ASTC = re.compile(r"ASTC_(\d+)x(\d+)(?:_SRGB)?")
_CHANNELS = re.compile(r"(?:[RGBAXLIZSE]\d+)+")
_CHANNEL = re.compile(r"([RGBAXLIZSE])(\d+)")


@dataclass(frozen=True, slots=True)
class FormatInfo:
    """What a virgl format id means for storage and display."""

    id: int
    name: str
    bytes_per_block: int
    block_width: int
    block_height: int
    kind: str  # "plain", "compressed", "subsampled", "planar", "other" or "none"
    has_alpha: bool  # an alpha (or intensity) channel is stored; X channels are ignored
    is_srgb: bool
    is_depth: bool
    is_stencil: bool
    # Memory byte order of the channels when every channel is 8 bits (gallium array
    # formats): "BGRA", "BGRX", "RGBA", "XBGR", "RGB", "LA", "R", ...; None otherwise.
    channel_order: str | None

    @property
    def is_compressed(self) -> bool:
        return self.kind == "compressed"


def _describe(fid: int, name: str) -> FormatInfo:
    srgb = "SRGB" in name
    if name == "NONE":
        return FormatInfo(fid, name, 0, 1, 1, "none", False, False, False, False, None)
    if name in _BLOCKS:
        size, bw, bh, kind = _BLOCKS[name]
        alpha = name.endswith(("A1", "SA2U_NORM"))
        return FormatInfo(fid, name, size, bw, bh, kind, alpha, srgb, False, False, None)
    astc = _ASTC.fullmatch(name)
    if astc:
        bw, bh = int(astc.group(1)), int(astc.group(2))
        return FormatInfo(fid, name, 16, bw, bh, "compressed", True, srgb, False, False, None)
    for prefix, size in _BLOCK_PREFIXES.items():
        if name.startswith(prefix):
            alpha = "RGBA" in name or name.startswith(("DXT3", "DXT5", "LATC2"))
            return FormatInfo(fid, name, size, 4, 4, "compressed", alpha, srgb, False, False,
                              None)
    channels = [
        (letter, int(bits))
        for token in name.split("_") if _CHANNELS.fullmatch(token)
        for letter, bits in _CHANNEL.findall(token)
    ]
    total_bits = sum(bits for _, bits in channels)
    if not channels or total_bits % 8:
        raise ValueError(f"cannot derive a layout from format name {name}")
    letters = "".join(letter for letter, _ in channels)
    depth, stencil = "Z" in letters, "S" in letters
    order = None
    if not (depth or stencil) and all(bits == 8 for _, bits in channels):
        order = letters
    return FormatInfo(fid, name, total_bits // 8, 1, 1, "plain",
                      any(c in letters for c in "AI"), srgb, depth, stencil, order)


def _build() -> dict[int, FormatInfo]:
    table: dict[int, FormatInfo] = {}
    for first, names in _RUNS:
        for offset, name in enumerate(names.split()):
            table[first + offset] = _describe(first + offset, name)
    return table


FORMATS: dict[int, FormatInfo] = _build()
"""Every id of `enum virgl_formats` -> its description."""

_IDS = {info.name: fid for fid, info in FORMATS.items()} | _ALIASES


def format_info(fid: int) -> FormatInfo | None:
    """The description of format `fid`, or None if virgl does not define it."""
    return FORMATS.get(fid)


def format_name(fid: int) -> str:
    """`B8G8R8X8_UNORM` for 2; `UNKNOWN(123)` for an id the enum lacks."""
    info = FORMATS.get(fid)
    return info.name if info else f"UNKNOWN({fid})"


@cache
def format_id(name: str) -> int:
    """The id of a format name, with or without the `VIRGL_FORMAT_` prefix (KeyError)."""
    return _IDS[name.removeprefix("VIRGL_FORMAT_").removeprefix("PIPE_FORMAT_")]


def bytes_per_block(fid: int) -> int:
    """Bytes per block (a pixel for plain formats); ValueError for an unknown id."""
    return _require(fid).bytes_per_block


def channel_order(fid: int) -> str | None:
    """Memory byte order of an 8-bit-per-channel format ("BGRX" for 2), else None."""
    info = FORMATS.get(fid)
    return info.channel_order if info else None


def _require(fid: int) -> FormatInfo:
    info = FORMATS.get(fid)
    if info is None:
        raise ValueError(f"unknown virgl format {fid}")
    return info


def estimate_resource_bytes(
    target: int, format: int, width: int, height: int, depth: int, array_size: int,
    last_level: int, nr_samples: int,
) -> int:
    """Bytes a resource occupies: the whole mip chain, every layer, every sample.

    Mirrors Mesa's `virgl_resource_layout` (tightly packed rows, cube = 6 slices, 3D depth
    minified per level, other targets `array_size` slices) and then multiplies by the sample
    count, which Mesa leaves out of guest storage but the host has to allocate. For
    `PIPE_BUFFER` the width is the size in bytes. Zero sizes count as 1, as gallium's
    minify does; an unknown format raises ValueError.
    """
    if target == PIPE_BUFFER:
        return max(width, 0)
    info = _require(format)
    w, h, d = max(width, 1), max(height, 1), max(depth, 1)
    total = 0
    # past 31 halvings every level is 1x1x1 (and the renderer refuses such a chain)
    for _level in range(min(max(last_level, 0), 31) + 1):
        if target == PIPE_TEXTURE_CUBE:
            slices = 6
        elif target == PIPE_TEXTURE_3D:
            slices = d
        else:
            slices = max(array_size, 1)
        blocks_x = -(-w // info.block_width)
        blocks_y = -(-h // info.block_height)
        total += blocks_x * blocks_y * info.bytes_per_block * slices
        w, h, d = max(w >> 1, 1), max(h >> 1, 1), max(d >> 1, 1)
    return total * max(nr_samples, 1)

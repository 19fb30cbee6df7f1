"""TGSI shader text for our guest, and how virgl wants it split into packets.

Why: virgl ships shaders as TGSI *text* inside `CREATE_OBJECT(SHADER)` commands; the host
(virglrenderer `vrend_create_shader`) reassembles the pieces and runs `tgsi_text_translate`.
Our test guest only needs a handful of fixed shaders, so they live here as text.

How the text is packed (Mesa `virgl_encode_shader_state`, host `vrend_decode_create_shader`
+ `vrend_create_shader`):
- the text is sent NUL-terminated; `offlen` of the first packet is its byte length
  including the NUL (`VIRGL_OBJ_SHADER_OFFSET_VAL`), later packets carry
  `VIRGL_OBJ_SHADER_OFFSET_CONT | byte offset of the piece`;
- every piece but the last is a whole number of dwords (the host advances by the padded
  packet size and insists that the next offset matches); the last is zero-padded;
- the NUL must land in the last 4 bytes the host receives, which the padding guarantees;
- `num_tokens` only sizes the host's token array (`num_tokens + 10` tokens); a TGSI token
  never takes fewer than one character of text, so the text length is a safe bound.
"""

from __future__ import annotations

__all__ = [
    "COLOR_FS",
    "COLOR_VS",
    "TEXTURE_FS",
    "TEXTURE_VS",
    "VIRGL_OBJ_SHADER_OFFSET_CONT",
    "ShaderPiece",
    "estimate_num_tokens",
    "shader_pieces",
]

from typing import NamedTuple

VIRGL_OBJ_SHADER_OFFSET_CONT = 1 << 31  # virgl_protocol.h
_OFFSET_MASK = 0x7FFFFFFF  # VIRGL_OBJ_SHADER_OFFSET_VAL

# Vertex shader: IN[0] position (vec4), IN[1] colour (vec4) -> clip position + GENERIC[0].
COLOR_VS = """VERT
DCL IN[0]
DCL IN[1]
DCL OUT[0], POSITION
DCL OUT[1], GENERIC[0]
  0: MOV OUT[0], IN[0]
  1: MOV OUT[1], IN[1]
  2: END
"""

# Fragment shader: the interpolated GENERIC[0] colour is the output colour.
COLOR_FS = """FRAG
PROPERTY FS_COLOR0_WRITES_ALL_CBUFS 1
DCL IN[0], GENERIC[0], PERSPECTIVE
DCL OUT[0], COLOR
  0: MOV OUT[0], IN[0]
  1: END
"""

# Vertex shader for a textured quad: IN[0] position, IN[1] texture coordinate.
TEXTURE_VS = COLOR_VS

# Fragment shader: sample SVIEW[0] with SAMP[0] at the interpolated GENERIC[0].xy.
TEXTURE_FS = """FRAG
PROPERTY FS_COLOR0_WRITES_ALL_CBUFS 1
DCL IN[0], GENERIC[0], PERSPECTIVE
DCL OUT[0], COLOR
DCL SAMP[0]
DCL SVIEW[0], 2D, FLOAT
  0: TEX OUT[0], IN[0], SAMP[0], 2D
  1: END
"""


class ShaderPiece(NamedTuple):
    """One CREATE_OBJECT(SHADER) packet's share of the text."""

    offlen: int  # the VIRGL_OBJ_SHADER_OFFSET dword
    data: bytes  # the bytes of this piece, zero-padded to whole dwords


def estimate_num_tokens(text: str) -> int:
    """An upper bound of the TGSI tokens `text` translates to (its length, at least 16)."""
    return max(len(text.encode()), 16)


def shader_pieces(text: str, max_piece_bytes: int) -> list[ShaderPiece]:
    """Split NUL-terminated `text` into pieces of at most `max_piece_bytes` bytes.

    `max_piece_bytes` must be a positive multiple of 4 (continuations start on a dword
    boundary). A text without continuation yields one piece with `offlen` = its length.
    """
    if max_piece_bytes <= 0 or max_piece_bytes % 4:
        raise ValueError(f"max_piece_bytes must be a positive multiple of 4: {max_piece_bytes}")
    raw = text.encode() + b"\0"
    if b"\0" in raw[:-1]:
        raise ValueError("shader text must not contain NUL")
    if len(raw) > _OFFSET_MASK:
        raise ValueError("shader text too long")
    pieces = []
    for offset in range(0, len(raw), max_piece_bytes):
        chunk = raw[offset:offset + max_piece_bytes]
        chunk += b"\0" * (-len(chunk) % 4)
        offlen = len(raw) if offset == 0 else (offset | VIRGL_OBJ_SHADER_OFFSET_CONT)
        pieces.append(ShaderPiece(offlen, chunk))
    return pieces

"""Property tests for vv_rewrite against a small Python reference model.

The model below is a second, deliberately plain implementation of
docs/virgl-handles.md (explicit slot lists per command, not the C
code's arithmetic runs). Random well-formed streams must rewrite cleanly and
exactly like the model; random garbage must give the model's answer too
(code, error fields and every output dword), which also shows it never
reads or writes outside the buffer's commands.
"""

from __future__ import annotations

import errno

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from virgl_viewer._native import ffi, lib
from virgl_viewer.budgets import DEFAULT

MAX_COMMANDS = 62  # VIRGL_MAX_COMMANDS
GET_MEMORY_INFO = 50  # refused: vrend writes through a possibly NULL iov
U32 = st.integers(0, 2**32 - 1)

# ---- reference model -----------------------------------------------------------

OBJECT_SLOTS = {6: [1], 8: [1], 9: [3], 10: [1], 11: [1]}
FIXED_SLOTS = {
    9: [0],  # RESOURCE_INLINE_WRITE
    11: [0],  # SET_INDEX_BUFFER
    16: [3, 12],  # BLIT
    17: [0, 5],  # RESOURCE_COPY_REGION
    27: [4],  # SET_UNIFORM_BUFFER
    37: [6],  # LAUNCH_GRID
    42: [1],  # GET_QUERY_RESULT_QBO
    43: [0],  # TRANSFER3D
    45: [0, 11],  # COPY_TRANSFER3D
    47: [0],  # CLEAR_TEXTURE
    49: [0],  # PIPE_RESOURCE_SET_TYPE
    50: [0],  # GET_MEMORY_INFO
    59: [2, 3],  # DECODE_BITSTREAM
    60: [2, 3, 4],  # ENCODE_BITSTREAM
}


def slots(cmd: int, obj: int, n: int) -> list[int]:
    """Payload indices of resource handles for a command of payload length n."""
    if cmd == 1:
        cand = OBJECT_SLOTS.get(obj, [])
    elif cmd == 6:
        cand = [3 * i + 2 for i in range(n // 3)]
    elif cmd == 8:
        cand = [14, 19] if n == 20 else []
    elif cmd == 34:
        cand = [3 * i + 4 for i in range(max(n - 2, 0) // 3)]
    elif cmd == 35:
        cand = [5 * i + 6 for i in range(max(n - 2, 0) // 5)]
    elif cmd == 40:
        cand = [3 * i + 3 for i in range(max(n - 1, 0) // 3)]
    elif cmd == 55:
        cand = [4 + i for i in range(min(max(n - 4, 0), 3))]
    else:
        cand = FIXED_SLOTS.get(cmd, [])
    return [p for p in cand if p < n]


LONG_SHADER_BUDGET = DEFAULT.long_shader_bytes
DRAW_BUDGET = DEFAULT.draw_vertices
SHADER_TYPES, COMPUTE, MAX_SO, CONT = 6, 5, 64, 1 << 31


def ref_shader_guard(st_: dict, cmd: int, obj: int, p: list[int]) -> tuple[int, int]:
    """A model of vv_rewrite.c's guard (long shaders, draw sizes): (code, shader handle),
    (0, 0) to pass.
    st_ holds the stream's sub-context and the unfinished shaders {(sub, type): [handle,
    have, total]}."""
    n = len(p)
    longs = st_["longs"]
    unfinished = {v[0] for v in longs.values()}
    if cmd == 28:
        if n >= 1:
            st_["sub"] = p[0]
        return 0, 0
    if cmd == 31:
        return (4, p[0]) if n >= 1 and p[0] and p[0] in unfinished else (0, 0)
    if cmd == 52:
        for h in p[:SHADER_TYPES]:
            if h and h in unfinished:
                return 4, h
        return 0, 0
    if cmd == 8:  # DRAW_VBO: count x instances within draw_vertices
        return (7, 0) if n >= 5 and p[1] * max(p[4], 1) > DRAW_BUDGET else (0, 0)
    if cmd != 1 or obj != 4 or n < 5:
        return 0, 0
    h, typ, offlen = p[0], p[1], p[2]
    nso = 0 if typ == COMPUTE else p[4]
    if typ >= SHADER_TYPES or nso > MAX_SO or (nso and n < 9 + 2 * nso):
        return 0, 0
    text = (n - (10 + 2 * nso if nso else 6) + 1) * 4
    key = (st_["sub"], typ)
    cur = longs.get(key)
    if not offlen & CONT:
        total = (offlen + 3) // 4 * 4
        if cur is not None:
            return 5, h
        if total <= text:
            return 0, 0
        if h in unfinished or len(longs) == 32:
            return 5, h
        if total > LONG_SHADER_BUDGET - sum(v[2] for v in longs.values()):
            return 6, h
        longs[key] = [h, text, total]
        return 0, 0
    if cur is None or cur[0] != h or offlen & ~CONT != cur[1] or text > cur[2] - cur[1]:
        return 5, h
    cur[1] += text
    if cur[1] == cur[2]:
        del longs[key]
    return 0, 0


def ref_rewrite(mapping: dict[int, int], words: list[int]):
    out = list(words)
    cur = 0
    state: dict = {"sub": 0, "longs": {}}
    while cur < len(out):
        header = out[cur]
        cmd, obj, n = header & 0xFF, (header >> 8) & 0xFF, header >> 16
        if cmd >= MAX_COMMANDS or cmd == GET_MEMORY_INFO:
            return 3, (cur, cmd, obj, 0, 3), out
        if cur + n + 1 > len(out):
            return 2, (cur, cmd, obj, 0, 2), out
        code, shader = ref_shader_guard(state, cmd, obj, out[cur + 1: cur + 1 + n])
        if code:
            return code, (cur, cmd, obj, shader, code), out
        where = [cur + 1 + p for p in slots(cmd, obj, n)]
        for q in where:
            if out[q] and out[q] not in mapping:
                return 1, (cur, cmd, obj, out[q], 1), out
        for q in where:
            if out[q]:
                out[q] = mapping[out[q]]
        cur += n + 1
    return 0, (0, 0, 0, 0, 0), out


# ---- C side -------------------------------------------------------------------------


def make_map(mapping: dict[int, int]):
    m = ffi.gc(lib.vv_map_new(), lib.vv_map_free)
    for client, server in mapping.items():
        assert lib.vv_map_set(m, client, server) == 0
    return m


def c_rewrite(m, words: list[int]):
    buf = ffi.new("uint32_t[]", words) if words else ffi.new("uint32_t[1]")
    err = ffi.new("struct vv_rewrite_error *")
    code = lib.vv_rewrite_cmds(m, buf, len(words), err)
    fields = (err.offset_dw, err.cmd, err.obj_type, err.handle, err.code)
    return code, fields, list(buf)[: len(words)]


# ---- strategies ----------------------------------------------------------------------


def _k(lo: int, hi: int):
    return st.integers(lo, hi)


# (cmd, obj, strategy for payload len) for lengths virglrenderer accepts
WELL_FORMED = [
    (0, 0, _k(0, 30)),
    (1, 1, st.just(11)),
    (1, 2, st.just(9)),
    (1, 3, st.just(5)),
    (1, 4, _k(5, 30)),
    (1, 5, _k(0, 4).map(lambda k: 1 + 4 * k)),
    (1, 6, st.just(6)),
    (1, 7, st.just(9)),
    (1, 8, st.just(5)),
    (1, 9, st.just(4)),
    (1, 10, st.just(4)),
    (1, 11, st.just(6)),
    (2, 1, st.just(1)),
    (3, 8, st.just(1)),
    (4, 0, _k(0, 3).map(lambda k: 1 + 6 * k)),
    (5, 0, _k(0, 8).map(lambda k: 2 + k)),
    (6, 0, _k(0, 8).map(lambda k: 3 * k)),
    (7, 0, st.just(8)),
    (8, 0, st.sampled_from([12, 14, 20])),
    (9, 0, _k(12, 40)),
    (10, 0, _k(2, 12)),
    (11, 0, st.sampled_from([1, 3])),
    (12, 0, _k(2, 30)),
    (13, 0, st.just(1)),
    (14, 0, st.just(4)),
    (15, 0, _k(0, 4).map(lambda k: 1 + 2 * k)),
    (16, 0, st.just(21)),
    (17, 0, st.just(13)),
    (18, 0, _k(2, 10)),
    *[(c, 0, st.just(n)) for c, n in [(19, 1), (20, 1), (21, 2), (22, 32), (23, 32)]],
    (24, 0, st.just(1)),
    (25, 0, _k(1, 5)),
    (26, 0, st.just(3)),
    (27, 0, st.just(5)),
    *[(c, 0, st.just(n)) for c, n in [(28, 1), (29, 1), (30, 1), (31, 2), (32, 6), (33, 1)]],
    (34, 0, st.tuples(_k(0, 6), _k(0, 2)).map(lambda t: 2 + 3 * t[0] + t[1])),
    (35, 0, st.tuples(_k(0, 6), _k(0, 4)).map(lambda t: 2 + 5 * t[0] + t[1])),
    (36, 0, st.just(1)),
    (37, 0, st.just(8)),
    (38, 0, st.just(2)),
    (39, 0, st.just(1)),
    (40, 0, st.tuples(_k(0, 6), _k(0, 2)).map(lambda t: max(2, 1 + 3 * t[0] + t[1]))),
    (41, 0, _k(2, 8)),
    (42, 0, st.just(6)),
    (43, 0, _k(13, 16)),
    (44, 0, _k(0, 40)),
    (45, 0, st.just(14)),
    (46, 0, _k(2, 4)),
    (47, 0, st.just(12)),
    (48, 0, st.just(11)),
    (49, 0, _k(1, 4).map(lambda k: 8 + 2 * k)),
    (51, 0, _k(2, 8)),
    (52, 0, st.just(6)),
    (53, 0, st.sampled_from([7, 8])),
    (54, 0, st.just(1)),
    (55, 0, _k(5, 9)),
    (56, 0, st.just(1)),
    (57, 0, st.just(2)),
    (58, 0, _k(0, 8)),
    (59, 0, st.just(5)),
    (60, 0, st.just(5)),
    (61, 0, st.just(2)),
]

MAPPINGS = st.dictionaries(
    st.one_of(st.integers(1, 64), st.integers(1, 2**32 - 1)),
    st.integers(1, 2**32 - 1),
    min_size=1,
    max_size=40,
)


@st.composite
def well_formed_stream(draw, mapping: dict[int, int]):
    handles = st.sampled_from([0, *mapping])
    words: list[int] = []
    for _ in range(draw(st.integers(0, 25))):
        cmd, obj, lens = draw(st.sampled_from(WELL_FORMED))
        n = draw(lens)
        payload = draw(st.lists(U32, min_size=n, max_size=n))
        for p in slots(cmd, obj, n):
            payload[p] = draw(handles)
        if cmd == 8:  # a draw within draw_vertices (count, instances)
            payload[1] = draw(st.integers(0, 1 << 16))
            payload[4] = draw(st.integers(0, DRAW_BUDGET >> 16))
        if (cmd, obj) == (1, 4):  # a shader whole in its command (type, text length, nso 0)
            payload[1] = draw(st.integers(0, 5))
            payload[2] = draw(st.integers(0, (n - 5) * 4))
            payload[4] = 0
        words += [cmd | (obj << 8) | (n << 16), *payload]
    return words


@st.composite
def mapping_and_stream(draw):
    mapping = draw(MAPPINGS)
    return mapping, draw(well_formed_stream(mapping))


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_every_command_has_a_well_formed_generator():
    assert {c for c, _, _ in WELL_FORMED} == set(range(MAX_COMMANDS)) - {GET_MEMORY_INFO}


@SETTINGS
@given(mapping_and_stream())
def test_well_formed_streams_rewrite_like_the_model(case):
    mapping, words = case
    expected = ref_rewrite(mapping, words)
    assert expected[0] == 0
    assert c_rewrite(make_map(mapping), words) == expected


@SETTINGS
@given(mapping_and_stream(), st.lists(U32, max_size=60))
def test_end_transfers_padding_never_matters(case, stale):
    mapping, words = case
    padded = [44 | (len(stale) << 16), *stale, *words]
    code, err, out = c_rewrite(make_map(mapping), padded)
    assert (code, err) == (0, (0, 0, 0, 0, 0))
    assert out[: len(stale) + 1] == padded[: len(stale) + 1]
    assert out[len(stale) + 1 :] == ref_rewrite(mapping, words)[2]


HEADERS = st.builds(
    lambda c, o, n: c | (o << 8) | (n << 16),
    st.integers(0, 70),
    st.integers(0, 13),
    st.integers(0, 40),
)
GARBAGE = st.lists(
    st.one_of(HEADERS, U32, st.integers(0, 70), st.integers(0, 0xFFFF).map(lambda x: x << 16)),
    max_size=200,
)


HANDLE_CMDS = sorted({1, 6, 8, 34, 35, 40, 55, *FIXED_SLOTS})


@st.composite
def chunked_garbage(draw, mapping: dict[int, int]):
    """Commands of any id/type/len whose len is mostly right, sometimes off,
    with payload words that are often mapped handles: walks far into the
    buffer, and sometimes meets long runs (> 64 handles)."""
    word = st.one_of(st.sampled_from([0, *mapping]), U32, st.integers(0, 70))
    words: list[int] = []
    for _ in range(draw(st.integers(0, 20))):
        cmd = draw(
            st.one_of(
                st.sampled_from(HANDLE_CMDS),
                st.integers(0, MAX_COMMANDS - 1),
                st.integers(0, 255),
            )
        )
        obj = draw(st.one_of(st.sampled_from([6, 8, 9, 10, 11]), st.integers(0, 255)))
        if draw(st.integers(0, 9)) == 0:
            # long command, every word a handle or 0: runs past the C code's
            # one-pass stack buffer (64 handles)
            size = draw(st.integers(120, 260))
            rnd = draw(st.randoms(use_true_random=False))
            pool = [0, *mapping]
            payload = [rnd.choice(pool) for _ in range(size)]
        else:
            size = draw(st.one_of(st.integers(0, 24), st.integers(0, 40)))
            payload = draw(st.lists(word, min_size=size, max_size=size))
        n = max(0, size + draw(st.sampled_from([0] * 12 + [-1, 1, -3, 3])))
        words += [cmd | (obj << 8) | (n << 16), *payload]
    return words


@SETTINGS
@given(MAPPINGS, GARBAGE)
def test_garbage_matches_the_model(mapping, words):
    assert c_rewrite(make_map(mapping), words) == ref_rewrite(mapping, words)


@settings(SETTINGS, max_examples=200)
@given(MAPPINGS, st.data())
def test_chunked_garbage_matches_the_model(mapping, data):
    words = data.draw(chunked_garbage(mapping))
    assert c_rewrite(make_map(mapping), words) == ref_rewrite(mapping, words)


@SETTINGS
@given(mapping_and_stream(), st.data())
def test_garbled_well_formed_streams_match_the_model(case, data):
    # well-formed streams with a few dwords replaced: exercises errors deep
    # inside otherwise plausible buffers
    mapping, words = case
    words = list(words)
    for _ in range(data.draw(st.integers(0, 3))):
        if not words:
            break
        i = data.draw(st.integers(0, len(words) - 1))
        words[i] = data.draw(st.one_of(HEADERS, U32, st.integers(0, 80)))
    cut = data.draw(st.integers(0, len(words)))
    words = words[:cut]
    assert c_rewrite(make_map(mapping), words) == ref_rewrite(mapping, words)


# ---- map state machine ------------------------------------------------------------


class MapMachine(RuleBasedStateMachine):
    keys = Bundle("keys")

    def __init__(self):
        super().__init__()
        self.m = make_map({})
        self.model: dict[int, int] = {}

    @rule(target=keys, key=st.one_of(st.integers(0, 40), U32))
    def new_key(self, key):
        return key

    @rule(key=keys, server=U32)
    def set(self, key, server):
        ret = lib.vv_map_set(self.m, key, server)
        if key == 0 or server == 0:
            assert ret == -errno.EINVAL
        elif key in self.model:
            assert ret == -errno.EEXIST
        else:
            assert ret == 0
            self.model[key] = server

    @rule(key=keys)
    def get(self, key):
        assert lib.vv_map_get(self.m, key) == self.model.get(key, 0)

    @rule(key=keys)
    def remove(self, key):
        assert lib.vv_map_remove(self.m, key) == self.model.pop(key, 0)

    @rule(start=st.integers(1, 2**32 - 200), n=st.integers(1, 150))
    def bulk_set(self, start, n):
        for key in range(start, start + n):
            if key not in self.model:
                server = (key ^ 0x5A5A) or 0x5A5A  # never 0: not a server handle
                assert lib.vv_map_set(self.m, key, server) == 0
                self.model[key] = server

    @rule(data=st.data())
    def bulk_remove(self, data):
        if self.model:
            victims = data.draw(st.lists(st.sampled_from(sorted(self.model)), max_size=200))
            for key in victims:
                assert lib.vv_map_remove(self.m, key) == self.model.pop(key, 0)

    @invariant()
    def consistent(self):
        assert lib.vv_map_count(self.m) == len(self.model)
        items = list(self.model.items())
        for key, server in items[:64] + items[-64:]:
            assert lib.vv_map_get(self.m, key) == server


MapMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_map_state_machine = MapMachine.TestCase

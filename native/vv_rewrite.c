/*
 * vv_rewrite.c - resource-handle map and virgl command-stream rewriter.
 *
 * Why: every protocol-2 client numbers its resources from 1, while
 * virglrenderer's resource ids are global. The server hands out its own ids
 * and must translate each resource handle in a client's SUBMIT_CMD payload
 * before virglrenderer sees it, refusing handles the client does not own.
 * See vv_rewrite.h for the contract and docs/virgl-handles.md for
 * the map of handle positions this file encodes.
 *
 * How:
 *  - The map is a linear-probing hash table of (client, server) pairs. Key 0
 *    marks an empty slot (0 is never a valid handle). The load factor stays
 *    at or below 1/2, deletion shifts entries back (no tombstones, so heavy
 *    create/unref churn does not slow lookups).
 *    Hashing has two modes. Fast mode, the default: Fibonacci hashing of
 *    key ^ seed (one multiply by 2^64/phi, top bits), seed random per map.
 *    Sequential ids, what real clients send, land almost always in their
 *    home slot, so lookups are branch-predictable. A hostile client could
 *    still try to pile ids into one probe chain, so every insert measures
 *    how far its entry lands from home; past VV_MAP_MAX_DISPLACEMENT the
 *    table switches for good to strong mode: splitmix64's finaliser over
 *    key ^ a new random seed, where every key bit affects every index bit.
 *    (A random multiplier alone was measured first: some draws cluster
 *    sequential ids badly, so it is not used.)
 *  - The rewriter walks commands like vrend_decode_ctx_submit_cmd (header:
 *    bits 0-7 command, 8-15 object type, 16-31 payload length; next command at
 *    cur + len + 1). Where the resource handles of a command sit is always an
 *    arithmetic run inside the payload: first index, stride, maximum count.
 *    A run is cut at the command's len, which also yields the element counts
 *    of the variable-length commands (SET_VERTEX_BUFFERS, SET_SHADER_BUFFERS,
 *    SET_SHADER_IMAGES, SET_ATOMIC_BUFFERS: the handle is the last dword of
 *    each element, so "handle inside len" == "element complete").
 *    Payload indices below are the virgl_protocol.h offsets minus 1, because
 *    that header counts the command header as dword 0.
 *  - A command's handles are all checked before any is written, so on error
 *    the failing command and everything after it are left untouched.
 */
#include "vv_rewrite.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- virgl_protocol.h mirror --------------------------------------------- */

/* enum virgl_context_cmd */
enum {
    VV_CCMD_NOP = 0,
    VV_CCMD_CREATE_OBJECT = 1,
    VV_CCMD_SET_VERTEX_BUFFERS = 6,
    VV_CCMD_DRAW_VBO = 8,
    VV_CCMD_RESOURCE_INLINE_WRITE = 9,
    VV_CCMD_SET_INDEX_BUFFER = 11,
    VV_CCMD_BLIT = 16,
    VV_CCMD_RESOURCE_COPY_REGION = 17,
    VV_CCMD_SET_UNIFORM_BUFFER = 27,
    VV_CCMD_SET_SUB_CTX = 28,
    VV_CCMD_BIND_SHADER = 31,
    VV_CCMD_SET_SHADER_BUFFERS = 34,
    VV_CCMD_SET_SHADER_IMAGES = 35,
    VV_CCMD_LAUNCH_GRID = 37,
    VV_CCMD_SET_ATOMIC_BUFFERS = 40,
    VV_CCMD_GET_QUERY_RESULT_QBO = 42,
    VV_CCMD_TRANSFER3D = 43,
    VV_CCMD_END_TRANSFERS = 44,
    VV_CCMD_COPY_TRANSFER3D = 45,
    VV_CCMD_CLEAR_TEXTURE = 47,
    VV_CCMD_PIPE_RESOURCE_SET_TYPE = 49,
    VV_CCMD_GET_MEMORY_INFO = 50,
    VV_CCMD_LINK_SHADER = 52,
    VV_CCMD_CREATE_VIDEO_BUFFER = 55,
    VV_CCMD_DECODE_BITSTREAM = 59,
    VV_CCMD_ENCODE_BITSTREAM = 60,
    VV_MAX_COMMANDS = 62, /* VIRGL_MAX_COMMANDS in virglrenderer 0.10.4 */
};

/* enum virgl_object_type */
enum {
    VV_OBJECT_SHADER = 4,
    VV_OBJECT_SAMPLER_VIEW = 6,
    VV_OBJECT_SURFACE = 8,
    VV_OBJECT_QUERY = 9,
    VV_OBJECT_STREAMOUT_TARGET = 10,
    VV_OBJECT_MSAA_SURFACE = 11,
    VV_MAX_OBJECTS = 12, /* VIRGL_MAX_OBJECTS */
};

/* VIRGL_DRAW_VBO_SIZE_INDIRECT: the only DRAW_VBO form carrying handles. */
#define VV_DRAW_VBO_SIZE_INDIRECT 20u
/* VREND_VIDEO_BUFFER_PLANE_NUM (vrend_video.h): planes read per video buffer. */
#define VV_VIDEO_BUFFER_PLANE_NUM 3u
/* Effectively unbounded: len is 16 bits, so no run can be longer. */
#define VV_RUN_ANY 0xffffu
/* Runs up to this many handles are resolved in one pass (stack buffer). */
#define VV_RUN_LOCAL 64u

/*
 * Resource handles of one command: payload indices first, first + stride,
 * ... at most max of them, each only if it lies inside len; if exact_len is
 * nonzero, only when len == exact_len. max == 0: no resource handles.
 */
struct slot_run {
    uint16_t max;
    uint8_t first;
    uint8_t stride;
    uint8_t exact_len;
};

#define RUN1(p) { 1, (p), 1, 0 }

static const struct slot_run cmd_runs[VV_MAX_COMMANDS] = {
    /* VIRGL_SET_VERTEX_BUFFER_HANDLE(i) = 3i + 3 */
    [VV_CCMD_SET_VERTEX_BUFFERS] = { VV_RUN_ANY, 2, 3, 0 },
    /* VIRGL_DRAW_VBO_INDIRECT_HANDLE 15, ..._INDIRECT_DRAW_COUNT_HANDLE 20 */
    [VV_CCMD_DRAW_VBO] = { 2, 14, 5, VV_DRAW_VBO_SIZE_INDIRECT },
    /* VIRGL_RESOURCE_IW_RES_HANDLE 1; data from p11 is never looked at */
    [VV_CCMD_RESOURCE_INLINE_WRITE] = RUN1(0),
    /* VIRGL_SET_INDEX_BUFFER_HANDLE 1 */
    [VV_CCMD_SET_INDEX_BUFFER] = RUN1(0),
    /* VIRGL_CMD_BLIT_DST_RES_HANDLE 4, VIRGL_CMD_BLIT_SRC_RES_HANDLE 13 */
    [VV_CCMD_BLIT] = { 2, 3, 9, 0 },
    /* VIRGL_CMD_RCR_DST_RES_HANDLE 1, VIRGL_CMD_RCR_SRC_RES_HANDLE 6 */
    [VV_CCMD_RESOURCE_COPY_REGION] = { 2, 0, 5, 0 },
    /* VIRGL_SET_UNIFORM_BUFFER_RES_HANDLE 5 */
    [VV_CCMD_SET_UNIFORM_BUFFER] = RUN1(4),
    /* VIRGL_SET_SHADER_BUFFER_RES_HANDLE(i) = 3i + 5 */
    [VV_CCMD_SET_SHADER_BUFFERS] = { VV_RUN_ANY, 4, 3, 0 },
    /* VIRGL_SET_SHADER_IMAGE_RES_HANDLE(i) = 5i + 7 */
    [VV_CCMD_SET_SHADER_IMAGES] = { VV_RUN_ANY, 6, 5, 0 },
    /* VIRGL_LAUNCH_INDIRECT_HANDLE 7 */
    [VV_CCMD_LAUNCH_GRID] = RUN1(6),
    /* VIRGL_SET_ATOMIC_BUFFER_RES_HANDLE(i) = 3i + 4 */
    [VV_CCMD_SET_ATOMIC_BUFFERS] = { VV_RUN_ANY, 3, 3, 0 },
    /* VIRGL_QUERY_RESULT_QBO_QBO_HANDLE 2 (p0 is a query object) */
    [VV_CCMD_GET_QUERY_RESULT_QBO] = RUN1(1),
    /* VIRGL_RESOURCE_IW_RES_HANDLE 1 (shared transfer layout) */
    [VV_CCMD_TRANSFER3D] = RUN1(0),
    /* VIRGL_RESOURCE_IW_RES_HANDLE 1, VIRGL_COPY_TRANSFER3D_SRC_RES_HANDLE 12 */
    [VV_CCMD_COPY_TRANSFER3D] = { 2, 0, 11, 0 },
    /* VIRGL_TEXTURE_HANDLE 1 */
    [VV_CCMD_CLEAR_TEXTURE] = RUN1(0),
    /* VIRGL_PIPE_RES_SET_TYPE_RES_HANDLE 1 */
    [VV_CCMD_PIPE_RESOURCE_SET_TYPE] = RUN1(0),
    /* vrend_decode_get_memory_info reads dword 1 */
    [VV_CCMD_GET_MEMORY_INFO] = RUN1(0),
    /* VIRGL_CREATE_VIDEO_BUFFER_RES_BASE 5, one handle per plane */
    [VV_CCMD_CREATE_VIDEO_BUFFER] = { VV_VIDEO_BUFFER_PLANE_NUM, 4, 1, 0 },
    /* VIRGL_DECODE_BS_DSC_HANDLE 3, VIRGL_DECODE_BS_BUF_HANDLE 4 */
    [VV_CCMD_DECODE_BITSTREAM] = { 2, 2, 1, 0 },
    /* VIRGL_ENCODE_BS_DEST_HANDLE 3, _DESC_HANDLE 4, _FEED_HANDLE 5 */
    [VV_CCMD_ENCODE_BITSTREAM] = { 3, 2, 1, 0 },
    /* NOP and END_TRANSFERS carry stale padding: no entry, skipped by len. */
};

/* CREATE_OBJECT by object type (header bits 8-15); p0 is the new object id. */
static const struct slot_run object_runs[VV_MAX_OBJECTS] = {
    [VV_OBJECT_SAMPLER_VIEW] = RUN1(1),     /* VIRGL_OBJ_SAMPLER_VIEW_RES_HANDLE 2 */
    [VV_OBJECT_SURFACE] = RUN1(1),          /* VIRGL_OBJ_SURFACE_RES_HANDLE 2 */
    [VV_OBJECT_QUERY] = RUN1(3),            /* VIRGL_OBJ_QUERY_RES_HANDLE 4 */
    [VV_OBJECT_STREAMOUT_TARGET] = RUN1(1), /* VIRGL_OBJ_STREAMOUT_RES_HANDLE 2 */
    [VV_OBJECT_MSAA_SURFACE] = RUN1(1),     /* same layout as SURFACE */
};

static const struct slot_run no_run = { 0, 0, 0, 0 };

/* ---- handle map ----------------------------------------------------------- */

struct vv_entry {
    uint32_t key; /* client handle; 0 = empty */
    uint32_t val; /* server handle */
};

/* A shader whose text is still being sent ("long shader", see shader_guard). */
struct long_shader {
    uint32_t sub, type, handle;
    uint32_t have, total; /* bytes of text received, announced */
};
/* Unfinished long shaders a client may have at once: virglrenderer allows one per
 * shader type (6) and sub-context; Mesa never has more than one at a time. */
#define VV_LONG_SHADERS 32u

struct vv_handle_map {
    struct vv_entry *slots;
    uint64_t seed;  /* random per map (and per mode switch) */
    uint32_t mask;  /* capacity - 1; capacity is a power of two */
    uint32_t shift; /* 64 - log2(capacity): index = top bits of the hash */
    uint32_t count;
    uint32_t strong; /* 0: fast hashing, 1: flood-resistant hashing */
    /* the stream's state that shader_guard follows */
    uint32_t sub;    /* the sub-context of SET_SUB_CTX */
    uint32_t n_long;
    uint64_t long_bytes; /* announced text of the unfinished ones */
    struct long_shader longs[VV_LONG_SHADERS];
};

/* The text all of a client's unfinished long shaders may announce together (virglrenderer
 * allocates it at the first part); budgets.py's long_shader_bytes, set at start-up.
 * Until set, no limit. */
static uint64_t long_shader_budget = UINT64_MAX;
/* The vertices one direct DRAW_VBO may ask for, count x max(1, instance_count): llvmpipe
 * runs a draw's vertex stage on the thread that submits it (virglrenderer's
 * vrend_draw_vbo passes both straight to glDraw*Instanced*), so one small command can
 * hold that thread for minutes. budgets.py's draw_vertices; until set, no limit. */
static uint64_t draw_budget = UINT64_MAX;

void vv_rewrite_set_limits(uint64_t long_shader_bytes, uint64_t draw_vertices)
{
    long_shader_budget = long_shader_bytes;
    draw_budget = draw_vertices;
}

#define VV_MAP_MIN_CAP 16u
#define VV_MAP_MAX_CAP (1u << 31)
/* Longest distance from home an insert may land at before strong mode. */
#define VV_MAP_MAX_DISPLACEMENT 64u
/* 2^64 / golden ratio, odd: the classic Fibonacci-hashing multiplier. */
#define VV_FIB_MUL 0x9e3779b97f4a7c15ull

static inline uint64_t mix64(uint64_t x)
{
    /* splitmix64 finaliser: every input bit affects every output bit */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static inline uint32_t hash_slot(uint64_t seed, uint32_t strong, uint32_t shift, uint32_t key)
{
    uint64_t x = key ^ seed;
    x = strong ? mix64(x) : x * VV_FIB_MUL;
    return (uint32_t)(x >> shift);
}

static inline uint32_t home_slot(const vv_handle_map *m, uint32_t key)
{
    return hash_slot(m->seed, m->strong, m->shift, key);
}

static uint64_t fresh_seed(const void *salt)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        /* no entropy yet (early boot): still differ per map and per call */
        struct timespec ts;
        timespec_get(&ts, TIME_UTC);
        seed = (uint64_t)(uintptr_t)salt ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec;
    }
    return mix64(seed);
}

static uint32_t log2_u32(uint32_t pow2)
{
    uint32_t n = 0;
    while (pow2 > 1) {
        pow2 >>= 1;
        n++;
    }
    return n;
}

/*
 * Moves every entry into a fresh table of new_cap slots hashed with
 * (seed, strong). Returns the largest displacement seen, or -ENOMEM with the
 * map unchanged.
 */
static int64_t map_rehash(vv_handle_map *m, uint32_t new_cap, uint64_t seed, uint32_t strong)
{
    struct vv_entry *fresh = calloc(new_cap, sizeof(*fresh));
    if (!fresh)
        return -ENOMEM;

    struct vv_entry *old = m->slots;
    uint32_t old_cap = m->mask + 1;
    uint32_t worst = 0;
    m->slots = fresh;
    m->mask = new_cap - 1;
    m->shift = 64 - log2_u32(new_cap);
    m->seed = seed;
    m->strong = strong;
    for (uint32_t i = 0; i < old_cap; i++) {
        if (!old[i].key)
            continue;
        uint32_t home = home_slot(m, old[i].key);
        uint32_t j = home;
        while (fresh[j].key)
            j = (j + 1) & m->mask;
        fresh[j] = old[i];
        if (((j - home) & m->mask) > worst)
            worst = (j - home) & m->mask;
    }
    free(old);
    return worst;
}

/* Called with the displacement of a new placement; may switch modes. */
static void check_displacement(vv_handle_map *m, int64_t displacement)
{
    if (m->strong || displacement <= (int64_t)VV_MAP_MAX_DISPLACEMENT)
        return;
    /* on ENOMEM the map simply stays in fast mode: still correct */
    (void)map_rehash(m, m->mask + 1, fresh_seed(m), 1);
}

vv_handle_map *vv_map_new(void)
{
    vv_handle_map *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->slots = calloc(VV_MAP_MIN_CAP, sizeof(*m->slots));
    if (!m->slots) {
        free(m);
        return NULL;
    }
    m->mask = VV_MAP_MIN_CAP - 1;
    m->shift = 64 - log2_u32(VV_MAP_MIN_CAP);
    m->seed = fresh_seed(m);
    return m;
}

void vv_map_free(vv_handle_map *m)
{
    if (!m)
        return;
    free(m->slots);
    free(m);
}

/* Slot index holding key, or the empty slot ending its probe chain. */
static inline uint32_t find_slot(const vv_handle_map *m, uint32_t key)
{
    uint32_t i = home_slot(m, key);
    for (;;) {
        uint32_t k = m->slots[i].key;
        if (k == key || k == 0)
            return i;
        i = (i + 1) & m->mask;
    }
}

uint32_t vv_map_get(const vv_handle_map *m, uint32_t client)
{
    if (!client)
        return 0;
    /* a hit returns its value; the empty slot holds val 0 */
    return m->slots[find_slot(m, client)].val;
}

int vv_map_set(vv_handle_map *m, uint32_t client, uint32_t server)
{
    if (!client || !server)
        return -EINVAL;
    uint32_t i = find_slot(m, client);
    if (m->slots[i].key)
        return -EEXIST;
    uint32_t cap = m->mask + 1;
    if ((uint64_t)(m->count + 1) * 2 > cap) {
        if (cap >= VV_MAP_MAX_CAP)
            return -ENOMEM;
        int64_t worst = map_rehash(m, cap * 2, m->seed, m->strong);
        if (worst < 0)
            return (int)worst;
        check_displacement(m, worst);
        i = find_slot(m, client);
    }
    m->slots[i].key = client;
    m->slots[i].val = server;
    m->count++;
    check_displacement(m, (i - home_slot(m, client)) & m->mask);
    return 0;
}

uint32_t vv_map_remove(vv_handle_map *m, uint32_t client)
{
    if (!client)
        return 0;
    uint32_t hole = find_slot(m, client);
    uint32_t server = m->slots[hole].val;
    if (!m->slots[hole].key)
        return 0;

    /*
     * Backward-shift deletion: walk the rest of the probe chain and pull back
     * every entry whose home lies cyclically at or before the hole, so that
     * no lookup ever stops early at the freed slot.
     */
    uint32_t j = hole;
    for (;;) {
        j = (j + 1) & m->mask;
        uint32_t k = m->slots[j].key;
        if (!k)
            break;
        uint32_t home = home_slot(m, k);
        if (((hole - home) & m->mask) < ((j - home) & m->mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].key = 0;
    m->slots[hole].val = 0;
    m->count--;

    uint32_t cap = m->mask + 1;
    if (cap > VV_MAP_MIN_CAP && (uint64_t)m->count * 8 < cap)
        check_displacement(m, map_rehash(m, cap / 2, m->seed, m->strong)); /* ENOMEM: stay */
    return server;
}

uint32_t vv_map_count(const vv_handle_map *m)
{
    return m->count;
}

/* ---- long shaders ---------------------------------------------------------- */

/*
 * A shader's TGSI text may be longer than one command: CREATE_OBJECT(SHADER) announces
 * the whole length in its offlen dword and carries the first part; continuations (offlen
 * bit 31 set, the rest is their byte offset) carry the others, possibly in later
 * SUBMIT_CMDs (Mesa's encoder flushes in between). virglrenderer inserts the shader
 * object at the first part, with no program yet (vrend_create_shader: 0.10.4 keeps the
 * text in sel->tmp_buf, 1.1 in long_shader_in_progress[type]), and vrend_bind_shader /
 * vrend_link_program_hook take any shader object by handle: a draw with an unfinished
 * shader bound dereferences its missing program (SIGSEGV in 0.10.4, found by our server
 * fuzzer: tests/fuzz/regressions/server/crash-517641c9...). So this follows the text
 * as virglrenderer does (per sub-context and shader type) and refuses a BIND_SHADER or
 * LINK_SHADER naming a shader still being sent, a continuation virglrenderer would not
 * take, and announced text past the budget. The layout below is vrend_decode_create_shader's
 * (both versions): p0 handle, p1 type, p2 offlen, p3 num_tokens, p4 stream-output count
 * (compute: local memory), then 4 strides and 2 dwords per output, then the text.
 */
#define VV_SHADER_TYPES 6u          /* PIPE_SHADER_TYPES: vertex .. compute */
#define VV_SHADER_COMPUTE 5u
#define VV_MAX_SO_OUTPUTS 64u       /* PIPE_MAX_SO_OUTPUTS */
#define VV_SHADER_CONT (1u << 31)   /* VIRGL_OBJ_SHADER_OFFSET_CONT */

static struct long_shader *long_find(vv_handle_map *m, uint32_t sub, uint32_t type)
{
    for (uint32_t i = 0; i < m->n_long; i++)
        if (m->longs[i].sub == sub && m->longs[i].type == type)
            return &m->longs[i];
    return NULL;
}

static int long_unfinished(const vv_handle_map *m, uint32_t handle)
{
    for (uint32_t i = 0; handle && i < m->n_long; i++)
        if (m->longs[i].handle == handle)
            return 1;
    return 0;
}

static void long_done(vv_handle_map *m, struct long_shader *l)
{
    m->long_bytes -= l->total;
    *l = m->longs[--m->n_long];
}

/* The guard's view of one command (long shaders, draw sizes); VV_RW_OK, or why it is
 * refused (*handle: the shader). */
static int shader_guard(vv_handle_map *m, uint32_t cmd, uint32_t obj_type,
                        const uint32_t *p, uint32_t len, uint32_t *handle)
{
    switch (cmd) {
    case VV_CCMD_SET_SUB_CTX:
        /* virglrenderer ignores an unknown id and stays; following it anyway only
         * makes this stricter (a continuation then has no match and is refused) */
        if (len >= 1)
            m->sub = p[0];
        return VV_RW_OK;
    case VV_CCMD_BIND_SHADER:
        if (len >= 1 && long_unfinished(m, p[0])) {
            *handle = p[0];
            return VV_RW_SHADER_UNFINISHED;
        }
        return VV_RW_OK;
    case VV_CCMD_LINK_SHADER:
        for (uint32_t i = 0; i < len && i < VV_SHADER_TYPES; i++)
            if (long_unfinished(m, p[i])) {
                *handle = p[i];
                return VV_RW_SHADER_UNFINISHED;
            }
        return VV_RW_OK;
    case VV_CCMD_DRAW_VBO:
        /* VIRGL_DRAW_VBO_COUNT 2, _INSTANCE_COUNT 5 (payload 1 and 4); an indirect
         * draw's counts are in a buffer, out of reach here */
        if (len >= 5 && (uint64_t)p[1] * (p[4] ? p[4] : 1) > draw_budget)
            return VV_RW_DRAW_BUDGET;
        return VV_RW_OK;
    case VV_CCMD_CREATE_OBJECT:
        break;
    default:
        return VV_RW_OK;
    }
    if (obj_type != VV_OBJECT_SHADER || len < 5)
        return VV_RW_OK; /* not a shader, or one virglrenderer refuses itself */
    const uint32_t h = p[0], type = p[1], offlen = p[2];
    const uint32_t nso = type == VV_SHADER_COMPUTE ? 0 : p[4];
    if (type >= VV_SHADER_TYPES || nso > VV_MAX_SO_OUTPUTS || (nso && len < 9 + 2 * nso))
        return VV_RW_OK; /* refused by virglrenderer (EINVAL) */
    const uint32_t text_offset = nso ? 10 + 2 * nso : 6; /* header included */
    const uint64_t bytes = (uint64_t)(len - text_offset + 1) * 4;
    struct long_shader *l = long_find(m, m->sub, type);
    *handle = h;
    if (!(offlen & VV_SHADER_CONT)) {
        const uint64_t total = ((uint64_t)offlen + 3) / 4 * 4;
        if (l)
            return VV_RW_SHADER_STREAM; /* a new shader while one of its type is unfinished */
        if (total <= bytes)
            return VV_RW_OK; /* whole in this command (or refused by virglrenderer) */
        if (long_unfinished(m, h) || m->n_long == VV_LONG_SHADERS)
            return VV_RW_SHADER_STREAM;
        if (total > long_shader_budget - m->long_bytes)
            return VV_RW_SHADER_BUDGET;
        m->longs[m->n_long++] = (struct long_shader){m->sub, type, h, (uint32_t)bytes,
                                                     (uint32_t)total};
        m->long_bytes += total;
        return VV_RW_OK;
    }
    /* a continuation: exactly the next bytes of this sub-context's unfinished shader */
    if (!l || l->handle != h || (offlen & ~VV_SHADER_CONT) != l->have ||
        bytes > (uint64_t)l->total - l->have)
        return VV_RW_SHADER_STREAM;
    l->have += (uint32_t)bytes;
    if (l->have == l->total)
        long_done(m, l);
    return VV_RW_OK;
}

/* ---- rewriter -------------------------------------------------------------- */

static int fail(struct vv_rewrite_error *err, int code, uint32_t offset,
                uint32_t header, uint32_t handle)
{
    if (err) {
        err->offset_dw = offset;
        err->cmd = header & 0xff;
        err->obj_type = (header >> 8) & 0xff;
        err->handle = handle;
        err->code = code;
    }
    return code;
}

char *vv_rewrite_describe(const struct vv_rewrite_error *e, uint32_t base_dw, char *out,
                          size_t n)
{
    char what[96];
    switch (e->code) {
    case VV_RW_UNKNOWN_HANDLE:
        snprintf(what, sizeof(what), "unknown resource handle %u in", e->handle);
        break;
    case VV_RW_TRUNCATED:
        snprintf(what, sizeof(what), "command runs past the buffer:");
        break;
    case VV_RW_BAD_COMMAND:
        snprintf(what, sizeof(what), "unknown virgl command:");
        break;
    case VV_RW_SHADER_UNFINISHED:
        snprintf(what, sizeof(what), "shader %u used before all its text came:", e->handle);
        break;
    case VV_RW_SHADER_STREAM:
        snprintf(what, sizeof(what), "shader %u: long shader text out of sequence:",
                 e->handle);
        break;
    case VV_RW_SHADER_BUDGET:
        snprintf(what, sizeof(what), "shader %u: long shader text over budget "
                 "long_shader_bytes:", e->handle);
        break;
    case VV_RW_DRAW_BUDGET:
        snprintf(what, sizeof(what), "a draw of count x instances over budget "
                 "draw_vertices:");
        break;
    default:
        snprintf(what, sizeof(what), "rewrite error %d:", e->code);
    }
    snprintf(out, n, "%s virgl command %u (object type %u) at dword %u", what, e->cmd,
             e->obj_type, e->offset_dw + base_dw);
    return out;
}

int vv_rewrite_cmds(vv_handle_map *m, uint32_t *buf, uint32_t ndw,
                    struct vv_rewrite_error *err)
{
    if (err)
        memset(err, 0, sizeof(*err));

    uint32_t cur = 0;
    while (cur < ndw) {
        const uint32_t header = buf[cur];
        const uint32_t cmd = header & 0xff;
        const uint32_t len = header >> 16;

        /* same order of checks as vrend_decode_ctx_submit_cmd */
        if (cmd >= VV_MAX_COMMANDS)
            return fail(err, VV_RW_BAD_COMMAND, cur, header, 0);
        /* GET_MEMORY_INFO writes through the resource's iov without checking
         * it exists (vrend_renderer_get_meminfo): a NULL dereference on any
         * resource without guest backing. Hosts without VIRGL_CAP_V2_MEMINFO
         * (llvmpipe has neither NVX nor ATI meminfo) never invite it, so a
         * client sending it is refused. */
        if (cmd == VV_CCMD_GET_MEMORY_INFO)
            return fail(err, VV_RW_BAD_COMMAND, cur, header, 0);
        if (len >= ndw - cur)
            return fail(err, VV_RW_TRUNCATED, cur, header, 0);

        uint32_t shader = 0;
        int g = shader_guard(m, cmd, (header >> 8) & 0xff, buf + cur + 1, len, &shader);
        if (g)
            return fail(err, g, cur, header, shader);

        const struct slot_run *r = &cmd_runs[cmd];
        if (cmd == VV_CCMD_CREATE_OBJECT) {
            uint32_t type = (header >> 8) & 0xff;
            r = type < VV_MAX_OBJECTS ? &object_runs[type] : &no_run;
        }

        if (r->max && (!r->exact_len || len == r->exact_len)) {
            uint32_t *p = buf + cur + 1;
            const uint32_t stride = r->stride;
            uint32_t end = r->first + (uint32_t)r->max * stride; /* past the last slot */
            if (end > len)
                end = len;

            /*
             * Resolve every handle before writing any, so a refused command
             * stays untouched. Real streams have few handles per command;
             * longer runs (only a hostile or odd client) look up twice.
             */
            uint32_t server[VV_RUN_LOCAL];
            uint32_t n = 0;
            for (uint32_t q = r->first; q < end; q += stride, n++) {
                uint32_t h = p[q];
                uint32_t s = h ? vv_map_get(m, h) : 0;
                if (h && !s)
                    return fail(err, VV_RW_UNKNOWN_HANDLE, cur, header, h);
                if (n < VV_RUN_LOCAL)
                    server[n] = s;
            }
            n = 0;
            for (uint32_t q = r->first; q < end; q += stride, n++) {
                uint32_t h = p[q];
                if (h)
                    p[q] = n < VV_RUN_LOCAL ? server[n] : vv_map_get(m, h);
            }
        }
        cur += len + 1;
    }
    return VV_RW_OK;
}

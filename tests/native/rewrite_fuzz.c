/*
 * rewrite_fuzz.c - standalone stress driver for native/vv_rewrite.c.
 *
 * Why: the Python tests check exact results; this driver runs millions of
 * map operations and random command buffers through the C code built with
 * -fsanitize=address,undefined, where any out-of-bounds access, overflow or
 * leak aborts. Buffers are malloc'd at their exact size so even a one-dword
 * over-read is caught. It includes vv_rewrite.c itself so it can also look
 * inside the map (hash mode, displacements). test_rewrite_sanitizers.py
 * builds and runs it: cc -Inative tests/native/rewrite_fuzz.c
 *
 * Usage: rewrite_fuzz [iterations [seed]]   stress + fuzz, prints "ok"
 *        rewrite_fuzz --bench                 timings (build with -O2, no
 *                                             sanitizers, for meaningful numbers)
 */
#include "vv_rewrite.c"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../fuzz/check.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545f4914f6cdd1dull) >> 32);
}

static uint32_t hdr(uint32_t cmd, uint32_t obj, uint32_t len)
{
    return cmd | (obj << 8) | (len << 16);
}

/* ---- map stress against a plain array over a fixed key universe --------- */

#define UNIVERSE 4096u

static void map_stress(unsigned long iters)
{
    static uint32_t keys[UNIVERSE], ref[UNIVERSE];
    uint32_t live = 0;
    for (uint32_t i = 0; i < UNIVERSE; i++) {
        /* half small sequential ids, half near the top of the range */
        keys[i] = i < UNIVERSE / 2 ? i + 1 : 0xffffffffu - (i - UNIVERSE / 2) * 0x10001u;
        ref[i] = 0;
    }

    vv_handle_map *m = vv_map_new();
    CHECK(m);
    CHECK(vv_map_set(m, 0, 1) == -EINVAL);
    CHECK(vv_map_set(m, 1, 0) == -EINVAL);
    CHECK(vv_map_get(m, 0) == 0 && vv_map_remove(m, 0) == 0);

    for (unsigned long it = 0; it < iters; it++) {
        /* phases bias towards filling or draining so the table grows and shrinks */
        unsigned set_bias = ((it >> 14) & 1) ? 80 : 20;
        uint32_t i = rnd() % UNIVERSE;
        uint32_t op = rnd() % 100;
        if (op < set_bias) {
            uint32_t val = rnd() | 1;
            int ret = vv_map_set(m, keys[i], val);
            if (ref[i]) {
                CHECK(ret == -EEXIST);
            } else {
                CHECK(ret == 0);
                ref[i] = val;
                live++;
            }
        } else if (op < 95) {
            CHECK(vv_map_remove(m, keys[i]) == ref[i]);
            if (ref[i])
                live--;
            ref[i] = 0;
        } else {
            CHECK(vv_map_get(m, keys[i]) == ref[i]);
        }
        CHECK(vv_map_count(m) == live);
        if ((it & 0xffff) == 0)
            for (uint32_t k = 0; k < UNIVERSE; k++)
                CHECK(vv_map_get(m, keys[k]) == ref[k]);
    }
    for (uint32_t k = 0; k < UNIVERSE; k++)
        CHECK(vv_map_get(m, keys[k]) == ref[k]);
    vv_map_free(m);

    /* sequential growth to 100k and back */
    m = vv_map_new();
    CHECK(m);
    for (uint32_t k = 1; k <= 100000; k++)
        CHECK(vv_map_set(m, k, k + 5) == 0);
    for (uint32_t k = 1; k <= 100000; k++)
        CHECK(vv_map_get(m, k) == k + 5);
    for (uint32_t k = 100000; k >= 1; k--)
        CHECK(vv_map_remove(m, k) == k + 5);
    CHECK(vv_map_count(m) == 0);
    vv_map_free(m);
    vv_map_free(NULL);
}

/* ---- hash flooding: white-box, needs the map's seed ------------------------ */

static uint32_t max_displacement(const vv_handle_map *m)
{
    uint32_t worst = 0;
    for (uint32_t i = 0; i <= m->mask; i++)
        if (m->slots[i].key) {
            uint32_t d = (i - home_slot(m, m->slots[i].key)) & m->mask;
            worst = d > worst ? d : worst;
        }
    return worst;
}

static void flood_test(void)
{
    /* real clients: sequential ids stay in fast mode with short chains */
    vv_handle_map *m = vv_map_new();
    CHECK(m);
    for (uint32_t k = 1; k <= 100000; k++)
        CHECK(vv_map_set(m, k, k) == 0);
    CHECK(!m->strong && max_displacement(m) <= 4);
    vv_map_free(m);

    /*
     * An attacker who knew the seed: keys whose key ^ seed form an arithmetic
     * progression with step F(36), whose product with the Fibonacci
     * multiplier is nearly 0 mod 2^64, all share one home slot in fast mode.
     */
    m = vv_map_new();
    CHECK(m);
    const uint32_t step = 14930352u; /* F(36) */
    const uint32_t s_lo = (uint32_t)m->seed;
    uint32_t home0 = home_slot(m, step ^ s_lo), same_home = 0;
    for (uint32_t t = 1; t < 4294967295u / step; t++)
        same_home += home_slot(m, (t * step) ^ s_lo) == home0;
    CHECK(same_home > 200); /* the attack works against fast mode ... */
    for (uint32_t t = 1; t < 4294967295u / step; t++) {
        if ((t * step) ^ s_lo)
            CHECK(vv_map_set(m, (t * step) ^ s_lo, t) == 0);
        for (uint32_t u = 1; u <= t; u++) /* also right after a switch */
            CHECK(vv_map_get(m, (u * step) ^ s_lo) == ((u * step) ^ s_lo ? u : 0));
    }
    CHECK(m->strong); /* ... so the map switched */
    CHECK(max_displacement(m) <= VV_MAP_MAX_DISPLACEMENT / 4);
    for (uint32_t t = 1; t < 4294967295u / step; t++)
        if ((t * step) ^ s_lo)
            CHECK(vv_map_get(m, (t * step) ^ s_lo) == t);
    /* strong mode keeps working through growth, removal and shrinking */
    for (uint32_t k = 1; k <= 5000; k++)
        CHECK(vv_map_set(m, 0x80000000u + k, k) == 0 || vv_map_get(m, 0x80000000u + k));
    for (uint32_t k = 1; k <= 5000; k++)
        CHECK(vv_map_remove(m, 0x80000000u + k) != 0);
    for (uint32_t t = 1; t < 4294967295u / step; t++)
        if ((t * step) ^ s_lo)
            CHECK(vv_map_remove(m, (t * step) ^ s_lo) == t);
    CHECK(m->count == 0 && m->strong);
    vv_map_free(m);
}

/* ---- rewrite fuzz: invariants that hold for any input --------------------- */

#define NKEYS 64u

static uint32_t fuzz_word(void)
{
    switch (rnd() % 6) {
    case 0:
        return 0;
    case 1:
    case 2:
        return 1 + rnd() % (NKEYS + 8); /* mostly mapped, some not */
    case 3:
        return rnd() % 80;
    default:
        return rnd();
    }
}

static void fill_random(uint32_t *buf, uint32_t ndw)
{
    uint32_t cur = 0;
    while (cur < ndw) {
        if (rnd() % 8 == 0) { /* unstructured word */
            buf[cur++] = rnd() % 2 ? rnd() : fuzz_word();
            continue;
        }
        uint32_t left = ndw - cur - 1;
        uint32_t len = rnd() % 4 == 0 ? rnd() % 0x10000 : rnd() % 41;
        if (rnd() % 4 && len > left)
            len = left; /* mostly fit, sometimes run past the end */
        uint32_t cmd = rnd() % 16 == 0 ? rnd() % 256 : rnd() % 62;
        uint32_t obj = rnd() % 16 == 0 ? rnd() % 256 : rnd() % 13;
        buf[cur++] = hdr(cmd, obj, len);
        for (uint32_t i = 0; i < len && cur < ndw; i++)
            buf[cur++] = fuzz_word();
    }
}

static void rewrite_fuzz(unsigned long iters)
{
    vv_handle_map *m = vv_map_new();
    CHECK(m);
    for (uint32_t k = 1; k <= NKEYS; k++)
        CHECK(vv_map_set(m, k, 0x10000u + k * 3) == 0);

    struct vv_rewrite_error err;
    CHECK(vv_rewrite_cmds(m, NULL, 0, &err) == VV_RW_OK && err.code == 0);

    unsigned long seen[4] = { 0 };
    for (unsigned long it = 0; it < iters; it++) {
        uint32_t ndw = rnd() % 4 == 0 ? rnd() % 70000 : rnd() % 300;
        if (!ndw)
            continue;
        uint32_t *buf = malloc(ndw * sizeof(*buf));
        uint32_t *orig = malloc(ndw * sizeof(*orig));
        CHECK(buf && orig);
        fill_random(buf, ndw);
        memcpy(orig, buf, ndw * sizeof(*buf));

        int rc = vv_rewrite_cmds(m, buf, ndw, rnd() % 8 ? &err : NULL);
        CHECK(rc >= VV_RW_OK && rc <= VV_RW_BAD_COMMAND);
        seen[rc]++;

        /* find where the walk must stop, independently */
        uint32_t stop = 0;
        /* ids >= 62 and GET_MEMORY_INFO (50, refused: see vv_rewrite.c) stop it */
        while (stop < ndw && (orig[stop] & 0xff) < 62 && (orig[stop] & 0xff) != 50 &&
               (orig[stop] >> 16) < ndw - stop)
            stop += (orig[stop] >> 16) + 1;

        if (rc == VV_RW_OK) {
            CHECK(stop == ndw);
        } else {
            CHECK(stop <= ndw);
            if (rc == VV_RW_BAD_COMMAND)
                CHECK(stop < ndw && ((orig[stop] & 0xff) >= 62 || (orig[stop] & 0xff) == 50));
            if (rc == VV_RW_TRUNCATED)
                CHECK(stop < ndw && (orig[stop] & 0xff) < 62 && (orig[stop] & 0xff) != 50);
        }
        /* every changed dword was a mapped handle and became its server id */
        for (uint32_t i = 0; i < ndw; i++)
            if (buf[i] != orig[i])
                CHECK(orig[i] && vv_map_get(m, orig[i]) == buf[i]);

        /* repeat with err to check the reported fields */
        memcpy(buf, orig, ndw * sizeof(*buf));
        memset(&err, 0xa5, sizeof(err));
        CHECK(vv_rewrite_cmds(m, buf, ndw, &err) == rc);
        CHECK(err.code == rc);
        if (rc == VV_RW_OK) {
            CHECK(!err.offset_dw && !err.cmd && !err.obj_type && !err.handle);
        } else {
            uint32_t off = err.offset_dw;
            CHECK(off < ndw && off <= stop);
            CHECK(err.cmd == (orig[off] & 0xff) && err.obj_type == ((orig[off] >> 8) & 0xff));
            /* the failing command and everything after it untouched */
            CHECK(!memcmp(buf + off, orig + off, (ndw - off) * sizeof(*buf)));
            if (rc == VV_RW_UNKNOWN_HANDLE) {
                CHECK(err.handle && !vv_map_get(m, err.handle));
                CHECK((orig[off] >> 16) < ndw - off);
            } else {
                CHECK(off == stop && err.handle == 0);
            }
        }
        free(buf);
        free(orig);
    }
    printf("rewrite fuzz: %lu ok, %lu unknown, %lu truncated, %lu bad command\n", seen[0],
           seen[1], seen[2], seen[3]);
    vv_map_free(m);
}

/* ---- benchmark -------------------------------------------------------------- */

static double now_us(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static uint32_t put(uint32_t *buf, uint32_t cur, uint32_t cmd, uint32_t obj, uint32_t len,
                    const uint32_t *payload)
{
    buf[cur] = hdr(cmd, obj, len);
    for (uint32_t i = 0; i < len; i++)
        buf[cur + 1 + i] = payload ? payload[i] : rnd() % 200 + 1;
    return cur + 1 + len;
}

/* A Mesa-like cbuf: transfer region + END_TRANSFERS, then draw blocks. */
static uint32_t build_realistic(uint32_t *buf, uint32_t ndw, uint32_t *ncmds)
{
    uint32_t cur = 0, n = 0;
    uint32_t p[64];
    for (int t = 0; t < 8; t++) {
        uint32_t tr[13] = { 1 + (uint32_t)t, 0, 0, 1024, 0, 0, 0, 0, 64, 64, 1, 0, 1 };
        cur = put(buf, cur, 43, 0, 13, tr), n++;
    }
    cur = put(buf, cur, 44, 0, 1023 - cur, NULL), n++; /* stale padding */
    while (cur + 300 < ndw) {
        uint32_t h = rnd() % 200 + 1;
        uint32_t surf[5] = { 1, h, 2, 0, 0 };
        cur = put(buf, cur, 1, 8, 5, surf), n++;
        uint32_t fb[3] = { 1, 0, 1 };
        cur = put(buf, cur, 5, 0, 3, fb), n++;
        cur = put(buf, cur, 4, 0, 7, NULL), n++;
        for (int b = 0; b < 3; b++) {
            uint32_t obj[1] = { 2 };
            cur = put(buf, cur, 2, 1 + (uint32_t)b, 1, obj), n++;
        }
        uint32_t sv[6] = { 3, h, 2, 0, 0, 0x03020100 };
        cur = put(buf, cur, 1, 6, 6, sv), n++;
        uint32_t svs[3] = { 1, 0, 3 };
        cur = put(buf, cur, 10, 0, 3, svs), n++;
        uint32_t vb[6] = { 16, 0, rnd() % 200 + 1, 32, 0, rnd() % 200 + 1 };
        cur = put(buf, cur, 6, 0, 6, vb), n++;
        uint32_t ib[3] = { rnd() % 200 + 1, 2, 0 };
        cur = put(buf, cur, 11, 0, 3, ib), n++;
        for (int i = 0; i < 64; i++)
            p[i] = rnd();
        p[0] = 0, p[1] = 0;
        cur = put(buf, cur, 12, 0, 64, p), n++;
        uint32_t ubo[5] = { 1, 1, 0, 256, rnd() % 200 + 1 };
        cur = put(buf, cur, 27, 0, 5, ubo), n++;
        uint32_t draw[12] = { 0, 36, 4, 1, 1, 0, 0, 0, 0, 0, 35, 0 };
        cur = put(buf, cur, 8, 0, 12, draw), n++;
        for (int i = 0; i < 44; i++)
            p[i] = rnd();
        p[0] = rnd() % 200 + 1;
        cur = put(buf, cur, 9, 0, 44, p), n++;
        for (int i = 0; i < 21; i++)
            p[i] = 0;
        p[3] = rnd() % 200 + 1, p[12] = rnd() % 200 + 1;
        cur = put(buf, cur, 16, 0, 21, p), n++;
        cur = put(buf, cur, 7, 0, 8, NULL), n++;
    }
    while (cur < ndw) {
        uint32_t len = ndw - cur - 1 > 0xffff ? 0xffff : ndw - cur - 1;
        cur = put(buf, cur, 0, 0, len, NULL), n++;
    }
    *ncmds = n;
    return cur;
}

static void bench_one(const char *name, vv_handle_map *m, uint32_t *buf, uint32_t ndw,
                      uint32_t ncmds)
{
    struct vv_rewrite_error err;
    double best = 1e30;
    for (int rep = 0; rep < 2000; rep++) {
        double t0 = now_us();
        int rc = vv_rewrite_cmds(m, buf, ndw, &err);
        double t = now_us() - t0;
        CHECK(rc == VV_RW_OK);
        if (t < best)
            best = t;
    }
    printf("%-28s %6u dwords %6u cmds: best %.1f us (%.2f GB/s)\n", name, ndw, ncmds, best,
           (double)ndw * 4 / best / 1e3);
}

static void bench(void)
{
    /* identity map: rewriting leaves the buffer valid for the next round */
    vv_handle_map *m = vv_map_new();
    CHECK(m);
    for (uint32_t k = 1; k <= 200; k++)
        CHECK(vv_map_set(m, k, k) == 0);

    const uint32_t ndw = 65536;
    uint32_t *buf = malloc(ndw * sizeof(*buf));
    CHECK(buf);
    uint32_t ncmds;
    build_realistic(buf, ndw, &ncmds);
    bench_one("realistic (Mesa-like)", m, buf, ndw, ncmds);

    /* worst case: every third dword a handle */
    uint32_t cur = 0;
    ncmds = 0;
    while (cur < ndw) {
        uint32_t len = (ndw - cur - 1) / 3 * 3;
        if (len > 0xffff / 3 * 3)
            len = 0xffff / 3 * 3;
        if (len == 0) {
            cur = put(buf, cur, 0, 0, ndw - cur - 1, NULL), ncmds++;
            continue;
        }
        buf[cur] = hdr(6, 0, len);
        for (uint32_t i = 0; i < len; i += 3) {
            buf[cur + 1 + i] = 16;
            buf[cur + 2 + i] = 0;
            buf[cur + 3 + i] = rnd() % 200 + 1;
        }
        cur += len + 1, ncmds++;
    }
    bench_one("dense (all vertex buffers)", m, buf, ndw, ncmds);

    /* 256 KiB of tiny commands: header-walk cost */
    cur = 0;
    ncmds = 0;
    while (cur < ndw) {
        uint32_t one[1] = { rnd() % 200 + 1 };
        if (cur + 2 <= ndw)
            cur = put(buf, cur, 11, 0, 1, one), ncmds++;
        else
            cur = put(buf, cur, 0, 0, 0, NULL), ncmds++;
    }
    bench_one("tiny (SET_INDEX_BUFFER x1)", m, buf, ndw, ncmds);
    CHECK(map_rehash(m, m->mask + 1, fresh_seed(m), 1) >= 0); /* as after a flood */
    bench_one("tiny, strong hashing", m, buf, ndw, ncmds);
    free(buf);
    vv_map_free(m);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        bench();
        return 0;
    }
    unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 20000;
    if (argc > 2)
        rng = strtoull(argv[2], NULL, 0) | 1;
    map_stress(iters * 50);
    flood_test();
    rewrite_fuzz(iters);
    printf("ok\n");
    return 0;
}

/*
 * fuzz_rewrite.c - libFuzzer target: native/vv_rewrite.c, the handle map and
 * the rewriter of virgl command buffers (SUBMIT_CMD payloads).
 *
 * Why: tests/native/rewrite_fuzz.c throws random buffers at the rewriter; this
 * target lets coverage steer the buffers into every command's handle run and
 * the map into its growth, deletion and strong-hashing paths, built with
 * -fsanitize=fuzzer,address,undefined. The buffer is malloc'd at its exact
 * size, so a one-dword over-read is caught.
 *
 * Input: byte 0 = mode.
 *  - mode < 0x80, rewrite: k = mode & 63 client handles (u32 each) are mapped
 *    to server ids 0x40000000 + i + 1, the rest is the command buffer. Checked:
 *    the result against an independent walk of the headers (where the walk
 *    must stop and why), that only mapped handles changed and each became its
 *    server id, the reported error fields, that the failing command and all
 *    after it are untouched, and that rewriting back with the inverse map
 *    restores the original exactly (the handle positions are the same both
 *    ways: they depend on headers only).
 *  - mode >= 0x80, map: 5-byte operations (op, key) against a plain array.
 */
#include "vv_rewrite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define BAD_CMD(c) (((c) & 0xff) >= 62 || ((c) & 0xff) == 50) /* see vv_rewrite.c */

static uint32_t rd32(const uint8_t *p)
{
   uint32_t v;
   memcpy(&v, p, 4);
   return v;
}

static void map_ops(const uint8_t *data, size_t size)
{
   enum { N = 4096 };
   static uint32_t keys[N], vals[N];
   uint32_t n = 0, i;
   vv_handle_map *m = vv_map_new();
   CHECK(m);
   for (; size >= 5; data += 5, size -= 5) {
      uint32_t key = rd32(data + 1), op = data[0] % 4, found = N;
      if (data[0] & 0x80) /* dense keys too: long probe chains, growth */
         key &= 0x3ff;
      for (i = 0; i < n; i++)
         if (keys[i] == key)
            found = i;
      if (op <= 1) { /* set */
         int rc = vv_map_set(m, key, key * 2 + 1);
         if (!key || !(key * 2 + 1))
            CHECK(rc < 0);
         else if (found < N)
            CHECK(rc < 0);
         else if (n < N) {
            CHECK(rc == 0);
            keys[n] = key, vals[n++] = key * 2 + 1;
         } else {
            CHECK(rc == 0);
            CHECK(vv_map_remove(m, key) == key * 2 + 1);
         }
      } else if (op == 2) { /* remove */
         uint32_t v = vv_map_remove(m, key);
         CHECK(v == (found < N ? vals[found] : 0));
         if (found < N)
            keys[found] = keys[--n], vals[found] = vals[n];
      } else {
         CHECK(vv_map_get(m, key) == (found < N ? vals[found] : 0));
      }
      CHECK(vv_map_count(m) == n);
   }
   for (i = 0; i < n; i++)
      CHECK(vv_map_get(m, keys[i]) == vals[i]);
   vv_map_free(m);
}

static void rewrite(const uint8_t *data, size_t size, uint32_t k)
{
   vv_handle_map *m = vv_map_new(), *inv = vv_map_new();
   struct vv_rewrite_error err;
   uint32_t i, ndw, stop = 0, *buf, *orig;
   int rc;
   CHECK(m && inv);
   for (i = 0; i < k && size >= 4; i++, data += 4, size -= 4) {
      uint32_t h = rd32(data), s = 0x40000000u + i + 1;
      if (vv_map_set(m, h, s) == 0)
         CHECK(vv_map_set(inv, s, h) == 0);
   }
   ndw = (uint32_t)(size / 4);
   buf = malloc(ndw ? ndw * 4 : 1);
   orig = malloc(ndw ? ndw * 4 : 1);
   CHECK(buf && orig);
   if (ndw) {
      memcpy(buf, data, ndw * 4);
      memcpy(orig, data, ndw * 4);
   }
   memset(&err, 0xa5, sizeof(err));
   rc = vv_rewrite_cmds(m, buf, ndw, &err);
   CHECK(rc >= VV_RW_OK && rc <= VV_RW_SHADER_BUDGET && err.code == rc);

   while (stop < ndw && !BAD_CMD(orig[stop]) && (orig[stop] >> 16) < ndw - stop)
      stop += (orig[stop] >> 16) + 1;
   for (i = 0; i < ndw; i++)
      if (buf[i] != orig[i])
         CHECK(orig[i] && vv_map_get(m, orig[i]) == buf[i]);
   if (rc == VV_RW_OK) {
      CHECK(stop == ndw);
      CHECK(!err.offset_dw && !err.cmd && !err.obj_type && !err.handle);
   } else {
      uint32_t off = err.offset_dw;
      CHECK(off < ndw && off <= stop);
      CHECK(err.cmd == (orig[off] & 0xff) && err.obj_type == ((orig[off] >> 8) & 0xff));
      CHECK(!memcmp(buf + off, orig + off, (ndw - off) * 4));
      if (rc == VV_RW_UNKNOWN_HANDLE)
         CHECK(err.handle && !vv_map_get(m, err.handle) && (orig[off] >> 16) < ndw - off);
      else if (rc >= VV_RW_SHADER_UNFINISHED) /* the long-shader guard: CREATE, BIND, LINK */
         CHECK((orig[off] >> 16) < ndw - off && ((orig[off] & 0xff) == 1 ||
               (orig[off] & 0xff) == 31 || (orig[off] & 0xff) == 52));
      else
         CHECK(off == stop && !err.handle && (rc == VV_RW_BAD_COMMAND) == BAD_CMD(orig[off]));
      ndw = off; /* the prefix that was rewritten */
   }
   /* back again: the original */
   CHECK(vv_rewrite_cmds(inv, buf, ndw, NULL) == VV_RW_OK);
   CHECK(!ndw || !memcmp(buf, orig, ndw * 4));
   free(buf);
   free(orig);
   vv_map_free(m);
   vv_map_free(inv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
   if (!size)
      return 0;
   if (data[0] & 0x80)
      map_ops(data + 1, size - 1);
   else
      rewrite(data + 1, size - 1, data[0] & 63);
   return 0;
}

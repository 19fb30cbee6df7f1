/*
 * fuzz_engine.c - libFuzzer target: native/vv_fast.c fed whole vtest streams.
 *
 * Why: the C engine parses what any local process sends and owns those
 * clients' resources; every message it takes or hands on must leave it, the
 * renderer and the Python side consistent. Built with clang
 * -fsanitize=fuzzer,address,undefined against fake_virgl.c (the harness'
 * stand-in for libvirglrenderer, see fake_virgl.h) and the real vv_glue.c.
 *
 * How: one input = an 8-byte control prefix + the client's byte stream.
 * The stream goes through a real socketpair, in chunks the prefix chooses,
 * into a vv_conn served the way Session does it: vv_fast_select on an epoll
 * set (the render thread's selector), vv_conn_pump, and for what the engine
 * hands over (VV_FAST_SLOW/EOF) a small stand-in of the Python session below
 * (py_*) that frames messages as vtest/codec.py does and keeps the resource
 * mirror, the context and the fences as session*.py do. Fences retire when
 * the prefix says, through the fence poll fd. A bystander client may be
 * connected (a readback then parks instead of blocking). At the end the
 * client hangs up, everything retires, and fake_check_clean() requires that
 * nothing is left: no resource, context, fence, and (LeakSanitizer) no
 * memory.
 *
 * The stream is sent a message at a time unless the prefix asks for other cuts.
 * Control prefix: [0] flags (see F_*), [1] fault mask (FAKE_FAIL_*), [2] the
 * call from which faults start, [3] chunking seed, [4] fences: low nibble how
 * many retire (15: all, 0: only at the end), high nibble every how many turns
 * of the loop (+1), [5] ring result, [6..7] reserved. Like Mesa, the client
 * waits (some turns) while the server has it parked in a BUSY_WAIT.
 */
#define _GNU_SOURCE
#include "fake_virgl.h"
#include "vv_fast.h"
#include "vv_glue.h"
#include "vv_rewrite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define F_NOTIFY 1       /* a scanout observer: presents are reported */
#define F_BYSTANDER 2    /* a second client with a context */
#define F_RINGS 4        /* display targets get a ring (presents copied in C) */
#define F_NO_DRAIN 8     /* the client never reads: replies queue up */
#define F_INTERVAL 16    /* presents rate-limited */
#define F_SMALL_CHUNKS 32
#define F_PY_FIRST 64    /* start in Python mode (as after a hand-off) */
#define F_RAW_CHUNKS 128 /* chunks cut anywhere (else: a message at a time, as a client
                            that waits for replies sends them) */
#define CONTROL 8

#include "check.h"

/* --------------------------------------------------------------- the session stand-in */
struct pres { /* Session.resources */
   uint32_t client, server, bind, last_level;
   uint64_t shm_size;
   void *shm;
   struct iovec *iov;
   int native;
};

struct sess {
   int fd, peer, closed, py_mode, py_eof, watched, have_renderer;
   uint32_t protocol;
   struct vv_conn *c;
   vv_handle_map *map;
   uint8_t *buf; /* the codec's buffer */
   size_t pos, len, cap;
   struct pres *res;
   size_t nres, res_cap;
};

static int epfd = -1, pollfd = -1, trace;
#define TRACE(...) (trace ? fprintf(stderr, __VA_ARGS__) : 0)
static uint32_t next_ctx = 1, flags, retire_n, retire_period, tick;
static struct sess *sessions[2];

static void watch(struct sess *s, int on)
{
   struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->fd};
   if (on != s->watched)
      CHECK(epoll_ctl(epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, s->fd, &ev) == 0);
   s->watched = on;
}

static struct pres *py_find(struct sess *s, uint32_t client)
{
   size_t i;
   for (i = 0; i < s->nres; i++)
      if (s->res[i].client == client)
         return &s->res[i];
   return NULL;
}

static void py_forget(struct sess *s, struct pres *r)
{
   *r = s->res[--s->nres];
}

/* Unref a resource the stand-in created (Session._destroy_resource). */
static void py_destroy(struct pres *r)
{
   vv_resource_release(r->server);
   vv_res_id_release(r->server);
   free(r->shm);
   free(r->iov);
}

static void sync_resources(struct sess *s)
{
   struct vv_res_event ev[16];
   int n, i;
   while ((n = vv_conn_take_res_events(s->c, ev, 16)) > 0) {
      for (i = 0; i < n; i++) {
         struct pres *r = py_find(s, ev[i].client);
         if (ev[i].kind == VV_RES_CREATED) {
            CHECK(!r); /* the engine created a handle the mirror has */
            if (s->nres == s->res_cap) {
               s->res_cap = s->res_cap ? 2 * s->res_cap : 16;
               CHECK((s->res = realloc(s->res, s->res_cap * sizeof(*s->res))) != NULL);
            }
            s->res[s->nres++] = (struct pres){ev[i].client, ev[i].server, ev[i].bind,
                                              ev[i].last_level, ev[i].shm_size, NULL, NULL, 1};
            if ((flags & F_RINGS) && (ev[i].bind & ((1u << 7) | (1u << 18))))
               vv_conn_attach_ring(s->c, ev[i].client, (struct vv_ring *)&fake_ring);
         } else {
            CHECK(ev[i].kind == VV_RES_DESTROYED);
            if (r) {
               CHECK(r->native);
               vv_conn_attach_ring(s->c, ev[i].client, NULL);
               py_forget(s, r);
            }
         }
      }
   }
}

static void sess_close(struct sess *s)
{
   size_t i;
   uint64_t submitted, completed;
   if (s->closed)
      return;
   if (s->c->res_events)
      sync_resources(s);
   s->closed = 1;
   watch(s, 0);
   submitted = s->c->fence_submitted;
   completed = s->c->fence_completed;
   vv_conn_close(s->c);
   for (i = 0; i < s->nres; i++)
      if (!s->res[i].native)
         py_destroy(&s->res[i]);
   s->nres = 0;
   if (s->c->ctx_id)
      CHECK(vv_context_retire(s->c->ctx_id, submitted, completed) >= 0);
   vv_map_free(s->map);
   s->map = NULL;
   close(s->fd);
}

static void py_send(struct sess *s, const uint32_t *msg, size_t n)
{
   /* The stand-in has no output queue of its own: a full socket drops. */
   if (s->c->out_len || send(s->fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)n)
      sess_close(s);
}

static uint32_t ensure_context(struct sess *s)
{
   if (!s->c->ctx_id) {
      uint32_t id = next_ctx++;
      if (virgl_renderer_context_create(id, 4, "fuzz"))
         return 0;
      CHECK(vv_conn_set_context(s->c, id) == 0);
   }
   return s->c->ctx_id;
}

static uint32_t rd32(const uint8_t *p)
{
   uint32_t v;
   memcpy(&v, p, 4);
   return v;
}

/* Fixed payload sizes (vtest/codec.py _FIXED); -1: not fixed. */
static int fixed_dwords(uint32_t cmd)
{
   static const int8_t n[25] = {-1, 0, 10, 1, 11, -1, -1, 2, -1, 0, 0, 1, 11, 10,
                                -1, 1, 2, 1, 6, 2, 1, 1, 3, -1, -1};
   return cmd < 25 ? n[cmd] : -1;
}

/* Bytes of the next whole message in the codec's buffer, 0: need more, -1: bad. */
static long py_frame(const struct sess *s)
{
   size_t avail = s->len - s->pos;
   const uint8_t *p = s->buf + s->pos;
   uint32_t len, cmd;
   long body;
   if (avail < 8)
      return 0;
   len = rd32(p), cmd = rd32(p + 4);
   if (!s->have_renderer)
      body = cmd == 8 && len <= 4096 ? (long)len : -1;
   else if (fixed_dwords(cmd) >= 0)
      body = (int)len == fixed_dwords(cmd) ? 4 * (long)len : -1;
   else if (cmd == 14)
      body = len >= 10 ? 40 : -1;
   else if ((cmd == 6 || cmd == 5 || cmd == 23 || cmd == 24) && len <= (64u << 20) / 4)
      body = cmd == 5 ? (len >= 11 ? 44 : -1) : 4 * (long)len;
   else
      body = -1;
   if (body < 0)
      return -1;
   if (cmd == 5 && avail >= 52) {
      uint32_t size = rd32(p + 48);
      if (size > (64u << 20) || len != 11 + (size + 3) / 4)
         return -1;
      body += size;
   }
   return avail >= 8 + (size_t)body ? 8 + body : 0;
}

/* One message, as the session's handlers; 0, or -1 to drop the client. */
static int py_handle(struct sess *s, const uint8_t *p, uint32_t len, uint32_t cmd)
{
   struct vv_conn *c = s->c;
   const uint8_t *b = p + 8;
   struct pres *r;
   TRACE("python: command %u, %u dwords\n", cmd, len);
   if (!s->have_renderer) {
      s->have_renderer = 1;
      return 0;
   }
   switch (cmd) {
   case 1: case 9: case 10: {
      uint32_t msg[2] = {0, cmd == 9 ? 2 : cmd};
      py_send(s, msg, sizeof(msg));
      return 0;
   }
   case 11: {
      uint32_t v = rd32(b) > 3 ? 3 : rd32(b), msg[3] = {1, 11, 0};
      s->protocol = c->protocol_version = msg[2] = v == 1 ? 0 : v;
      py_send(s, msg, sizeof(msg));
      return 0;
   }
   case 2: case 12: {
      uint32_t f[11] = {0}, i, server, client;
      struct virgl_renderer_resource_create_args a;
      struct pres n = {0};
      for (i = 0; i < (cmd == 2 ? 10u : 11u); i++)
         f[i] = rd32(b + 4 * i);
      if ((s->protocol >= 3) != (f[0] == 0) || (f[0] && py_find(s, f[0])) || s->nres >= 4096 ||
          f[10] > (1u << 20) || !ensure_context(s))
         return -1; /* (Python allows larger shm; the stand-in need not) */
      virgl_renderer_submit_cmd(NULL, (int)c->ctx_id, 0);
      if (!(server = vv_res_id_alloc()))
         return -1;
      client = f[0] ? f[0] : server;
      a = (struct virgl_renderer_resource_create_args){server, f[1], f[2], f[3], f[4], f[5],
                                                        f[6], f[7], f[8], f[9], 0};
      if (virgl_renderer_resource_create(&a, NULL, 0)) {
         vv_res_id_release(server);
         return -1;
      }
      n = (struct pres){client, server, f[3], f[8], f[10], NULL, NULL, 0};
      if (s->nres == s->res_cap) {
         s->res_cap = s->res_cap ? 2 * s->res_cap : 16;
         CHECK((s->res = realloc(s->res, s->res_cap * sizeof(*s->res))) != NULL);
      }
      r = &s->res[s->nres++];
      *r = n;
      CHECK(vv_map_set(s->map, client, server) == 0);
      virgl_renderer_ctx_attach_resource((int)c->ctx_id, (int)server);
      if (f[10]) {
         CHECK((r->shm = calloc(1, f[10])) && (r->iov = malloc(sizeof(*r->iov))));
         *r->iov = (struct iovec){r->shm, f[10]};
         if (virgl_renderer_resource_attach_iov((int)server, r->iov, 1)) {
            free(r->iov); /* never attached */
            r->iov = NULL;
            return -1;
         }
      }
      CHECK(vv_conn_add_resource(c, client, server, f[1], f[3], f[4], f[5], f[6], f[7], f[8],
                                 f[10], vv_texture_upper(f[4], f[5], f[6], f[7], f[9], f[8]))
            == 0);
      if (s->protocol >= 3) {
         uint32_t msg[3] = {1, cmd, server};
         py_send(s, msg, sizeof(msg));
      }
      return 0;
   }
   case 3:
      if (!(r = py_find(s, rd32(b))))
         return -1;
      if (r->native) {
         CHECK(vv_conn_destroy_resource(c, r->client) == 0);
         vv_conn_attach_ring(c, r->client, NULL);
      } else {
         vv_map_remove(s->map, r->client);
         vv_conn_remove_resource(c, r->client);
         virgl_renderer_submit_cmd(NULL, (int)c->ctx_id, 0);
         py_destroy(r);
      }
      py_forget(s, r);
      return 0;
   case 6: {
      uint32_t ndw = len, *cmds;
      int rc = 0;
      if (!ensure_context(s))
         return -1;
      if (ndw) {
         CHECK((cmds = malloc(4 * (size_t)ndw)) != NULL);
         memcpy(cmds, b, 4 * (size_t)ndw);
         rc = vv_rewrite_cmds(s->map, cmds, ndw, NULL) ||
              virgl_renderer_submit_cmd(cmds, (int)c->ctx_id, (int)ndw);
         free(cmds);
      }
      if (rc || vv_conn_fence(c, 0))
         return -1;
      c->submits++;
      return 0;
   }
   case 13: case 14: {
      uint32_t level = rd32(b + 4), offset = rd32(b + 36), i;
      struct virgl_box box = {rd32(b + 8), rd32(b + 12), rd32(b + 16), rd32(b + 20),
                              rd32(b + 24), rd32(b + 28)};
      if (!(r = py_find(s, rd32(b))) || level > r->last_level || !r->shm_size ||
          offset >= r->shm_size)
         return -1;
      for (i = 0; i < 3; i++) /* (Python checks the box against the level's extent) */
         if ((&box.w)[i] > UINT32_MAX - (&box.x)[i])
            return -1;
      virgl_renderer_submit_cmd(NULL, (int)c->ctx_id, 0);
      if (cmd == 13 ? virgl_renderer_transfer_read_iov(r->server, c->ctx_id, level, 0, 0, &box,
                                                      offset, NULL, 0)
                    : virgl_renderer_transfer_write_iov(r->server, c->ctx_id, (int)level, 0, 0,
                                                       &box, offset, NULL, 0))
         return -1;
      if (cmd == 13 && c->notify_present && (r->bind & ((1u << 7) | (1u << 18))))
         vv_conn_note_present(c, r->client);
      return 0;
   }
   case 7: {
      int busy = c->fence_completed < c->fence_submitted;
      uint32_t msg[3] = {1, 7, (uint32_t)busy};
      if (!c->ctx_id && rd32(b))
         return -1;
      if (busy && (rd32(b + 4) & 1))
         c->parked = 1;
      else
         py_send(s, msg, sizeof(msg));
      return 0;
   }
   case 17:
      return rd32(b) && ensure_context(s) ? 0 : -1;
   default: /* protocol-0 transfers, params, capsets, blobs, syncs: not the engine's */
      return 0;
   }
}

/* Session._process: the codec's events until it is at rest. */
static void py_process(struct sess *s)
{
   while (!s->c->parked && !s->closed) {
      long n = s->buf ? py_frame(s) : 0;
      if (n < 0) {
         sess_close(s); /* RemoteProtocolError */
         return;
      }
      if (n == 0) {
         if (s->py_eof)
            sess_close(s); /* EOF: CLOSED or mid-message */
         return;
      }
      const uint8_t *p = s->buf + s->pos;
      s->pos += (size_t)n;
      if (py_handle(s, p, rd32(p), rd32(p + 4))) {
         sess_close(s);
         return;
      }
      if (s->pos == s->len) {
         s->pos = s->len = 0;
         if (!s->py_eof) { /* at rest: C reads from here on */
            s->py_mode = s->c->py_mode = 0;
            return;
         }
      }
   }
}

static void py_receive(struct sess *s, const void *data, size_t n)
{
   if (!n)
      return;
   if (s->len + n > s->cap) {
      s->cap = (s->len + n) * 2;
      CHECK((s->buf = realloc(s->buf, s->cap)) != NULL);
   }
   memcpy(s->buf + s->len, data, n);
   s->len += n;
}

static void to_python(struct sess *s, int eof)
{
   size_t n = vv_conn_input_size(s->c);
   uint8_t *tmp;
   if (s->c->res_events)
      sync_resources(s);
   if (!eof && s->c->slow_len)
      n = s->c->slow_len;
   CHECK((tmp = malloc(n + 1)) != NULL);
   CHECK(vv_conn_take_input(s->c, tmp, n) == n);
   py_receive(s, tmp, n);
   free(tmp);
   s->py_eof |= eof;
   s->py_mode = s->c->py_mode = 1;
   py_process(s);
}

/* Session._after_pump; 1: pump again. */
static int after_pump(struct sess *s, int st)
{
   struct vv_conn *c = s->c;
   TRACE("engine: status %d\n", st);
   if (c->out_len) { /* the stand-in sends nothing more after it: just drop it */
      uint8_t tmp[256];
      while (vv_conn_output_size(c))
         vv_conn_take_output(c, tmp, sizeof(tmp));
   }
   switch (st) {
   case VV_FAST_NEED_DATA:
   case VV_FAST_PARKED:
      return 0;
   case VV_FAST_PRESENT:
      CHECK(c->present_count >= 1);
      if (!py_find(s, c->present_handle) && c->res_events)
         sync_resources(s);
      CHECK(py_find(s, c->present_handle)); /* a present of a resource Python never saw */
      return 1;
   case VV_FAST_SLOW:
   case VV_FAST_EOF:
      if (st == VV_FAST_EOF && c->parked) {
         sess_close(s);
         return 0;
      }
      to_python(s, st == VV_FAST_EOF);
      return !s->py_mode && !s->closed;
   case VV_FAST_YIELD:
      return 1;
   case VV_FAST_ERROR:
      CHECK(c->err_msg[0]);
      sess_close(s);
      return 0;
   case VV_FAST_PAUSE:
      watch(s, 0);
      return 0;
   case VV_FAST_SOCKERR:
      sess_close(s);
      return 0;
   default:
      CHECK(!"unknown status");
      return 0;
   }
}

static void pump(struct sess *s)
{
   int guard;
   for (guard = 0; guard < 100000 && !s->closed; guard++)
      if (!after_pump(s, vv_conn_pump(s->c)))
         return;
   CHECK(s->closed); /* the engine kept asking to be pumped */
}

static void on_readable(struct sess *s)
{
   uint8_t tmp[4096];
   ssize_t n;
   if (s->c->pending_status >= 0) {
      int st = s->c->pending_status;
      s->c->pending_status = -1;
      if (!after_pump(s, st))
         return;
   }
   if (!s->py_mode) {
      pump(s);
      return;
   }
   n = recv(s->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
   if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
   if (n <= 0) {
      if (s->c->parked) {
         sess_close(s);
         return;
      }
      s->py_eof = 1;
   } else {
      py_receive(s, tmp, (size_t)n);
   }
   if (s->c->parked) {
      if (s->len - s->pos > (1u << 20))
         watch(s, 0);
      return;
   }
   py_process(s);
}

static void resume(struct sess *s)
{
   if (s->closed)
      return;
   s->c->reader_paused = 0;
   watch(s, 1);
   if (s->py_mode)
      py_process(s);
   else
      pump(s);
}

static struct sess *by_fd(int fd)
{
   int i;
   for (i = 0; i < 2; i++)
      if (sessions[i] && sessions[i]->fd == fd && !sessions[i]->closed)
         return sessions[i];
   return NULL;
}

static struct sess *by_token(uint32_t token)
{
   return token < 2 && sessions[token] && !sessions[token]->closed ? sessions[token] : NULL;
}

/* What Python reads between turns: the fence log (stats, timelines) and the
 * presents the rate limit held back; both must agree with the counters. */
static void observe(struct sess *s)
{
   struct vv_fence_rec log[32];
   struct vv_conn *c = s->c;
   uint64_t from = c->fence_submitted > 20 ? c->fence_submitted - 20 : 0, prev = 0;
   int n = vv_conn_fences(c, from, log, 32), i;
   size_t k;
   CHECK(n >= 0 && n <= 32);
   for (i = 0; i < n; i++) {
      CHECK(log[i].fence_id > prev && log[i].fence_id >= from);
      CHECK(log[i].fence_id <= c->fence_submitted);
      CHECK((log[i].retired != 0) == (log[i].fence_id <= c->fence_completed));
      prev = log[i].fence_id;
   }
   for (k = 0; k < s->nres; k++) {
      double last = 0;
      int fresh = 0;
      if (s->res[k].native && vv_conn_take_skipped_presents(c, s->res[k].client, &last, &fresh))
         CHECK(last > 0);
   }
}

/* One turn of the render thread's loop; up to `retire` fences retire. */
static void turn(uint32_t retire)
{
   struct vv_sel_event ev[64];
   struct vv_ready ready[8];
   int n, i, k;
   if (retire && fake_pending_fences()) {
      uint64_t one = 1;
      TRACE("retire %u of %u fences\n", retire, fake_pending_fences());
      fake_retire(retire);
      CHECK(write(pollfd, &one, 8) == 8);
   }
   n = vv_fast_select(epfd, 0, pollfd, ev, 64);
   CHECK(n >= 0);
   for (i = 0; i < n; i++) {
      struct sess *s;
      if (ev[i].fd == pollfd) {
         uint64_t v;
         (void)!read(pollfd, &v, 8);
         while ((k = vv_fast_take_ready(ready, 8)) > 0) {
            int j;
            for (j = 0; j < k; j++) {
               s = by_token(ready[j].token);
               if (!s)
                  continue;
               if (ready[j].status >= 0 ? after_pump(s, ready[j].status) : 0)
                  pump(s);
               else if (!s->closed && !s->c->parked && (!s->watched || s->py_mode))
                  resume(s);
               else if (!s->closed && s->c->out_len)
                  after_pump(s, VV_FAST_NEED_DATA);
            }
         }
      } else if ((s = by_fd(ev[i].fd)) != NULL) {
         on_readable(s);
      }
   }
   for (i = 0; i < 2; i++)
      if (sessions[i] && !sessions[i]->closed)
         observe(sessions[i]);
   for (i = 0; i < 2; i++) { /* a YIELD or a resumed parked client: go on */
      struct sess *s = sessions[i];
      if (s && !s->closed && !s->c->parked && s->watched && vv_conn_input_size(s->c) &&
          s->c->pending_status < 0 && !s->py_mode)
         pump(s);
   }
}

/* A turn, with fences retiring as the control prefix says. */
static void step(void)
{
   turn(tick++ % retire_period == 0 ? retire_n : 0);
}

static struct sess *sess_new(uint32_t token)
{
   struct sess *s = calloc(1, sizeof(*s));
   int sv[2];
   CHECK(s && socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
   if (flags & F_NO_DRAIN) {
      int small = 4096;
      setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
   }
   s->fd = sv[0];
   s->peer = sv[1];
   CHECK((s->map = vv_map_new()) != NULL);
   CHECK((s->c = vv_conn_new(s->fd, s->map, token)) != NULL);
   s->c->notify_present = !!(flags & F_NOTIFY);
   s->c->present_interval = flags & F_INTERVAL ? 0.002 : 0;
   watch(s, 1);
   return s;
}

static void sess_free(struct sess *s)
{
   sess_close(s);
   if (s->peer >= 0)
      close(s->peer);
   vv_conn_free(s->c);
   free(s->res);
   free(s->buf);
   free(s);
}

static void drain_peer(struct sess *s)
{
   char buf[8192], ctl[CMSG_SPACE(sizeof(int) * 16)];
   for (;;) {
      struct iovec iov = {buf, sizeof(buf)};
      struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                         .msg_controllen = sizeof(ctl)};
      struct cmsghdr *cm;
      if (recvmsg(s->peer, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
         return;
      for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
         if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            int i, nfd = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int)), fd;
            for (i = 0; i < nfd; i++) {
               memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
               close(fd);
            }
         }
      }
   }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
   (void)argc, (void)argv;
   trace = getenv("FUZZ_ENGINE_TRACE") != NULL;
   CHECK(vv_renderer_init((void *)1, EGL_NO_DISPLAY, 0) == 0);
   {
      /* small budgets (the server's come from budgets.py): inputs reach every limit */
      struct vv_limits l = {.message_bytes = 1u << 20, .parked_input_bytes = 64u << 10,
                            .resources = 64, .shm_bytes_per_resource = 256u << 10,
                            .shm_bytes = 1u << 20, .mappings = 96,
                            .resource_bytes = 64u << 20, .server_resource_bytes = 128u << 20};
      vv_fast_set_limits(&l);
   }
   CHECK((epfd = epoll_create1(EPOLL_CLOEXEC)) >= 0);
   CHECK((pollfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) >= 0);
   {
      struct epoll_event ev = {.events = EPOLLIN, .data.fd = pollfd};
      CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, pollfd, &ev) == 0);
   }
   return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
   uint8_t ctl[CONTROL] = {0};
   uint32_t rng;
   size_t pos = 0;
   struct sess *s;
   int rounds;
   if (size < CONTROL)
      return 0;
   memcpy(ctl, data, CONTROL);
   data += CONTROL;
   size -= CONTROL;
   flags = ctl[0];
   fake_faults(ctl[1], ctl[2]);
   rng = ctl[3] * 2654435761u | 1;
   fake_retire(0);
   {
      uint64_t v;
      (void)!read(pollfd, &v, 8); /* nothing left over from the last input */
   }
   retire_n = (ctl[4] & 15) == 15 ? 255 : ctl[4] & 15;
   retire_period = (ctl[4] >> 4) + 1;
   tick = 0;
   fake_ring_result = ctl[5] & 1;

   s = sessions[0] = sess_new(0);
   if (flags & F_BYSTANDER) { /* a client with a context: readbacks park */
      sessions[1] = sess_new(1);
      sessions[1]->have_renderer = sessions[1]->py_mode = 0;
      CHECK(ensure_context(sessions[1]));
   }
   if (flags & F_PY_FIRST)
      s->py_mode = s->c->py_mode = 1;

   while (pos < size && !s->closed) {
      size_t chunk = size - pos;
      ssize_t w;
      rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
      if (flags & F_SMALL_CHUNKS)
         chunk = chunk < (rng % 64) + 1 ? chunk : (rng % 64) + 1;
      else if ((flags & F_RAW_CHUNKS) && (rng & 1))
         chunk = chunk < (rng >> 20) + 1 ? chunk : (rng >> 20) + 1;
      else if (!(flags & F_RAW_CHUNKS) && chunk >= 8) { /* the next message */
         uint32_t len = rd32(data + pos), cmd = rd32(data + pos + 4);
         uint64_t whole = 8 + (pos == 0 && cmd == 8 ? len : 4 * (uint64_t)len);
         if (cmd == 5 && chunk >= 52) /* TRANSFER_PUT: its data follows */
            whole = 52 + (uint64_t)rd32(data + pos + 48);
         chunk = whole < chunk ? (size_t)whole : chunk;
      }
      w = send(s->peer, data + pos, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w > 0)
         pos += (size_t)w;
      step();
      for (rounds = 0; rounds < 64 && s->c->parked && !s->closed; rounds++)
         step(); /* the client waits for its BUSY_WAIT's answer */
      if (!(flags & F_NO_DRAIN))
         drain_peer(s);
      if (w <= 0) { /* the server does not read: let fences retire, or give up */
         turn(retire_n ? retire_n : 1);
         if (s->c->parked || !s->watched)
            turn(255);
         if (send(s->peer, data + pos, 1, MSG_DONTWAIT | MSG_NOSIGNAL) <= 0)
            break;
         pos++;
      }
   }
   /* The client hangs up; the server finishes what it has. */
   shutdown(s->peer, SHUT_WR);
   for (rounds = 0; rounds < 1000 && !s->closed; rounds++) {
      drain_peer(s);
      if (rounds > 10)
         turn(255);
      else
         step();
      if (!s->closed && !s->watched && !s->c->parked)
         resume(s);
   }
   CHECK(s->closed);
   if (sessions[1])
      sess_close(sessions[1]);
   for (rounds = 0; rounds < 1000 && (fake_pending_fences() || vv_contexts_retiring());
        rounds++)
      turn(255);
   sess_free(s);
   if (sessions[1])
      sess_free(sessions[1]);
   sessions[0] = sessions[1] = NULL;
   fake_check_clean();
   return 0;
}

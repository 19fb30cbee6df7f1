/* vv_fast.c - the per-client fast path of the vtest server; see vv_fast.h.
 *
 * Wire facts (vtest_protocol.h): a message is an 8-byte header (length in
 * dwords, command id) and its payload; every field is a little-endian u32.
 * The numbers come from protocol.py (vv_protocol.h is generated from it).
 * One place per check: the framing here (vv_frame_body) is held to the codec's
 * by a property test; a transfer's target is checked by vv_conn_check_transfer
 * alone, here and for Python's transfer commands (protocol 0's, or any that
 * follows a message only Python takes); the command stream by the rewriter.
 * Failures of those are reported from here. A RESOURCE_CREATE2 or UNREF this
 * path does not take as it is (no context yet, a big or unusual resource, a
 * scanout's last frame to keep) goes to Python, which checks and reports it.
 */
#define _GNU_SOURCE
#include "vv_fast.h"
#include "vv_glue.h"
#include "vv_protocol.h"
#include "vv_ring.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#define RECV_CHUNK (1u << 18)
#define BATCH_MESSAGES 256           /* then yield to the other clients */
#define FENCE_LOG 1024               /* fences remembered per client */
#define MAX_HANDOFF (64u << 10)      /* a message given to Python alone is at most this */

/* The budgets (virgl_viewer/budgets.py, the only place they are written), set by
 * the binding before any client is served. */
static struct vv_limits limits;
static uint64_t live_mappings; /* shm mappings of every client's resources */
static uint64_t est_all;       /* estimated bytes of every client's resources */
/* The C path makes only resources up to this (16 bytes a texel, a whole mip chain);
 * bigger ones go to Python, which knows their format and counts them exactly. */
#define C_PATH_MAX_EST (64ull << 20)

void vv_fast_set_limits(const struct vv_limits *l)
{
   limits = *l;
   vv_rewrite_set_limits(l->long_shader_bytes, l->draw_vertices);
}

/* ------------------------------------------------------------ resources */
struct vv_res {
   uint32_t client, server, target, bind, width, height, depth, array_size, last_level;
   uint64_t shm_size;
   /* resources created here (RESOURCE_CREATE2) are owned here: */
   uint32_t format, nr_samples;
   uint64_t est;        /* estimated bytes (vv_conn_admit's resource budgets) */
   int owned;           /* C unrefs it and unmaps its shm */
   int py_known;        /* Python took its CREATED event */
   double created;
   /* presents (display targets): see vv_conn_note_present */
   double last_report;
   double skipped_at;   /* the last present held back */
   uint32_t skipped;
   uint64_t skipped_submits;
   double last_present_at;
   struct vv_ring *ring; /* its scanout's ring: presents are copied here, in C */
   void *shm;
   struct iovec *iov;   /* virglrenderer keeps this pointer: allocated apart */
};

struct vv_res_table {
   struct vv_res *slots; /* client == 0: free, a tombstone if server == TOMB */
   uint32_t cap, used, live;
   uint32_t mappings;  /* live entries with shm (each mapped once) */
   uint64_t shm_total; /* shm bytes of the live entries */
   uint64_t est_total; /* their estimated bytes (the renderer's storage) */
   double grew_at;     /* CLOCK_MONOTONIC seconds of the last insert */
};

/* Any nonzero client handle is valid, UINT32_MAX too: a removed entry keeps
 * client 0 and is told from a never-used one by its server field. */
#define TOMB UINT32_MAX

static void res_kill(struct vv_res *r)
{
   r->client = 0;
   r->server = TOMB;
}

static uint32_t hash32(uint32_t x)
{
   x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
   return x;
}

static struct vv_res *res_find(struct vv_res_table *t, uint32_t client)
{
   uint32_t i;
   if (!t->cap || client == 0)
      return NULL;
   for (i = hash32(client) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
      struct vv_res *r = &t->slots[i];
      if (r->client == client)
         return r;
      if (r->client == 0 && r->server != TOMB)
         return NULL;
   }
}

static int res_grow(struct vv_res_table *t)
{
   uint32_t ncap = t->cap ? t->cap * 2 : 64, i;
   struct vv_res *old = t->slots, *n;
   if (t->live * 4 < t->cap) /* mostly tombstones: rehash at the same size */
      ncap = t->cap;
   n = calloc(ncap, sizeof(*n));
   if (!n)
      return -ENOMEM;
   for (i = 0; i < t->cap; i++) {
      uint32_t j;
      if (old[i].client == 0)
         continue;
      for (j = hash32(old[i].client) & (ncap - 1); n[j].client; j = (j + 1) & (ncap - 1))
         ;
      n[j] = old[i];
   }
   free(old);
   t->slots = n;
   t->cap = ncap;
   t->used = t->live;
   return 0;
}

static double now_s(void);

/* A new entry for src->client (absent), or NULL (-errno in *err). */
static struct vv_res *res_insert(struct vv_res_table *t, const struct vv_res *src, int *err)
{
   struct vv_res *r;
   uint32_t i, client = src->client;
   *err = -EINVAL;
   if (!t || client == 0)
      return NULL;
   *err = -EEXIST;
   if (res_find(t, client) != NULL)
      return NULL;
   *err = -ENOMEM;
   if ((t->used + 1) * 4 > t->cap * 3 && res_grow(t))
      return NULL;
   for (i = hash32(client) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
      r = &t->slots[i];
      if (r->client == 0)
         break;
   }
   if (r->server != TOMB)
      t->used++;
   t->live++;
   t->shm_total += src->shm_size;
   t->est_total += src->est;
   t->grew_at = now_s();
   est_all += src->est;
   if (src->shm_size) {
      live_mappings++;
      t->mappings++;
   }
   *r = *src;
   r->ring = NULL;
   *err = 0;
   return r;
}

int vv_conn_add_resource(struct vv_conn *c, uint32_t client, uint32_t server,
                         uint32_t target, uint32_t bind, uint32_t width, uint32_t height,
                         uint32_t depth, uint32_t array_size, uint32_t last_level,
                         uint64_t shm_size, uint64_t est)
{
   struct vv_res r = {client, server, target, bind, width, height, depth, array_size,
                      last_level, shm_size, .py_known = 1, .est = est};
   int err;
   res_insert(c->res, &r, &err);
   return err;
}

/* The entry is gone (a tombstone); its shm counts no more. */
static void res_drop(struct vv_res_table *t, struct vv_res *r)
{
   res_kill(r);
   t->live--;
   t->shm_total -= r->shm_size;
   t->est_total -= r->est;
   est_all -= r->est;
   if (r->shm_size) {
      live_mappings--;
      t->mappings--;
   }
}

void vv_conn_remove_resource(struct vv_conn *c, uint32_t client)
{
   struct vv_res *r = c->res ? res_find(c->res, client) : NULL;
   if (r)
      res_drop(c->res, r);
}

void vv_conn_usage(const struct vv_conn *c, struct vv_usage *out)
{
   const struct vv_res_table *t = c->res;
   *out = t ? (struct vv_usage){t->live, t->mappings, t->shm_total, t->est_total, t->grew_at}
            : (struct vv_usage){0, 0, 0, 0, 0};
}

int vv_conn_admit(const struct vv_conn *c, uint64_t shm_size, uint64_t est)
{
   if (c->res->live >= limits.resources)
      return VV_ADMIT_RESOURCES;
   if (c->res->shm_total + shm_size > limits.shm_bytes)
      return VV_ADMIT_SHM_BYTES;
   if (shm_size && live_mappings >= limits.mappings)
      return VV_ADMIT_MAPPINGS;
   if (c->res->est_total + est > limits.resource_bytes)
      return VV_ADMIT_RESOURCE_BYTES;
   if (est_all + est > limits.server_resource_bytes)
      return VV_ADMIT_SERVER_RESOURCE_BYTES;
   return 0;
}

static void destroy_owned(struct vv_conn *c, struct vv_res *r);

/* ------------------------------------------------------------ server resource ids */
/* virglrenderer's resource ids are process-global; both the C path and the
 * Python session take them from here. */
static vv_handle_map *live_ids;
static uint32_t next_id = 1;

uint32_t vv_res_id_alloc(void)
{
   uint32_t id = next_id, tries = 0;
   if (!live_ids && !(live_ids = vv_map_new()))
      return 0;
   while (id == 0 || vv_map_get(live_ids, id)) {
      id++;
      if (++tries == 0) /* all 2^32 in use */
         return 0;
   }
   if (vv_map_set(live_ids, id, id))
      return 0;
   next_id = id + 1;
   return id;
}

void vv_res_id_release(uint32_t id)
{
   if (live_ids)
      vv_map_remove(live_ids, id);
}

static uint32_t max1(uint32_t v) { return v ? v : 1; }
static uint32_t shr(uint32_t v, uint32_t level) { return level >= 32 ? 0 : v >> level; }

/* (width, height, depth-or-layers) of a mip level, as transfers see it. */
static void level_extent(const struct vv_res *r, uint32_t level,
                         uint32_t *w, uint32_t *h, uint32_t *d)
{
   uint32_t t = r->target;
   *w = max1(shr(r->width, level));
   if (t == VV_TARGET_BUFFER || t == VV_TARGET_1D || t == VV_TARGET_1D_ARRAY)
      *h = max1(r->height);
   else
      *h = max1(shr(r->height, level));
   if (t == VV_TARGET_3D) {
      *d = max1(shr(r->depth, level));
   } else if (t == VV_TARGET_1D_ARRAY) {
      *h = max1(r->array_size);
      *d = 1;
   } else if (t == VV_TARGET_CUBE || t == VV_TARGET_2D_ARRAY || t == VV_TARGET_CUBE_ARRAY) {
      uint32_t min = t == VV_TARGET_CUBE ? 6 : 1;
      *d = r->array_size > min ? r->array_size : min;
   } else {
      *d = max1(r->depth);
   }
}

/* ------------------------------------------------------------ conn registry */
static struct vv_conn **conns;
static size_t nconns, conns_cap;
/* Clients the fence poll left for Python, each at most once (room for
 * conns_cap entries, grown with conns). */
static struct vv_ready *ready_q;
static size_t ready_n;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t empty_cmd[1];

static double now_s(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct vv_conn *vv_conn_new(int fd, vv_handle_map *map, uint32_t token)
{
   struct vv_conn *c = calloc(1, sizeof(*c));
   if (!c)
      return NULL;
   c->pending_status = -1;
   c->fd = fd;
   c->map = map;
   c->token = token;
   c->res = calloc(1, sizeof(*c->res));
   c->log = calloc(FENCE_LOG, sizeof(*c->log));
   c->log_size = FENCE_LOG;
   if (!c->res || !c->log) {
      free(c->res);
      free(c->log);
      free(c);
      return NULL;
   }
   return c;
}

static void unregister(struct vv_conn *c)
{
   size_t i;
   for (i = 0; i < ready_n; i++) { /* keeps the queue within conns_cap */
      if (ready_q[i].token == c->token) {
         memmove(ready_q + i, ready_q + i + 1, (ready_n - i - 1) * sizeof(*ready_q));
         ready_n--;
         break;
      }
   }
   for (i = 0; i < nconns; i++) {
      if (conns[i] == c) {
         conns[i] = conns[--nconns];
         return;
      }
   }
}

static int reserve_retiring(size_t contexts);

int vv_conn_set_context(struct vv_conn *c, uint32_t ctx_id)
{
   if (c->ctx_id)
      return -EEXIST;
   if (nconns == conns_cap) {
      size_t ncap = conns_cap ? conns_cap * 2 : 16;
      struct vv_conn **n = realloc(conns, ncap * sizeof(*n));
      struct vv_ready *q;
      if (!n)
         return -ENOMEM;
      conns = n;
      /* the ready queue holds a conn at most once: room for all, so adding
       * to it never fails */
      q = realloc(ready_q, ncap * sizeof(*q));
      if (!q)
         return -ENOMEM;
      ready_q = q;
      conns_cap = ncap;
   }
   /* Every context can become a retiring one (vv_context_retire) without an
    * allocation there: a failed one would leave the context alive forever. */
   if (reserve_retiring(nconns + 1))
      return -ENOMEM;
   conns[nconns++] = c;
   c->ctx_id = ctx_id;
   return 0;
}

void vv_conn_close(struct vv_conn *c)
{
   if (!c || c->closed)
      return;
   c->closed = 1;
   unregister(c);
   if (c->res) {
      uint32_t i;
      int switched = 0;
      for (i = 0; i < c->res->cap; i++) {
         struct vv_res *r = &c->res->slots[i];
         if (r->client == 0)
            continue;
         if (!r->owned) { /* Python frees it; its shm counts no more here */
            res_drop(c->res, r);
            continue;
         }
         if (!switched && c->ctx_id) { /* vrend unrefs in the current GL context */
            virgl_renderer_submit_cmd(empty_cmd, (int)c->ctx_id, 0);
            switched = 1;
         }
         r->py_known = 0; /* nobody reads the events any more */
         destroy_owned(c, r);
      }
   }
   free(c->ev);
   c->ev = NULL;
   c->ev_n = c->ev_cap = c->res_events = 0;
   free(c->in);
   free(c->out);
   c->in = c->out = NULL;
   c->in_pos = c->in_len = c->in_cap = c->out_len = c->out_cap = 0;
   if (c->res) {
      free(c->res->slots);
      free(c->res);
      c->res = NULL;
   }
   c->map = NULL;
   c->parked = 0;
   c->fd = -1;
   free(c->timelines);
   c->timelines = NULL;
   c->n_timelines = 0;
}

void vv_conn_free(struct vv_conn *c)
{
   if (!c)
      return;
   vv_conn_close(c);
   pthread_mutex_lock(&log_lock);
   free(c->log);
   c->log = NULL;
   pthread_mutex_unlock(&log_lock);
   free(c);
}

/* ------------------------------------------------------------ fences */
int vv_conn_fence(struct vv_conn *c, int switch_first)
{
   uint64_t fid = c->fence_submitted + 1;
   struct vv_fence_rec *rec;
   int rc;
   if (switch_first)
      virgl_renderer_submit_cmd(empty_cmd, (int)c->ctx_id, 0);
   rc = virgl_renderer_context_create_fence(c->ctx_id, VIRGL_RENDERER_FENCE_FLAG_MERGEABLE,
                                            0, fid);
   if (rc)
      return rc;
   c->fence_submitted = fid;
   pthread_mutex_lock(&log_lock);
   rec = &c->log[fid % c->log_size];
   rec->fence_id = fid;
   rec->created = now_s();
   rec->retired = 0;
   pthread_mutex_unlock(&log_lock);
   return 0;
}

int vv_conn_ring_fence(struct vv_conn *c, uint32_t ring, uint64_t *id)
{
   int rc;
   if (ring == 0)
      return -EINVAL;
   if (ring >= c->n_timelines) {
      struct vv_timeline *t = realloc(c->timelines, (ring + 1) * sizeof(*t));
      if (!t)
         return -ENOMEM;
      memset(t + c->n_timelines, 0, (ring + 1 - c->n_timelines) * sizeof(*t));
      c->timelines = t;
      c->n_timelines = ring + 1;
   }
   rc = virgl_renderer_context_create_fence(c->ctx_id, VIRGL_RENDERER_FENCE_FLAG_MERGEABLE,
                                            ring, c->timelines[ring].submitted + 1);
   if (rc)
      return rc;
   *id = ++c->timelines[ring].submitted;
   return 0;
}

struct vv_timeline vv_conn_timeline(struct vv_conn *c, uint32_t ring)
{
   struct vv_timeline none = {0, 0};
   return ring < c->n_timelines ? c->timelines[ring] : none;
}

/* A fence on ring > 0 retired (with MERGEABLE: and the ring's fences before it). */
static int ring_fence_retired(struct vv_conn *c, uint32_t ring, uint64_t fid)
{
   struct vv_timeline *t;
   if (ring >= c->n_timelines)
      return 0; /* never: the ids come from vv_conn_ring_fence */
   t = &c->timelines[ring];
   if (fid > t->submitted)
      fid = t->submitted;
   if (fid <= t->completed)
      return 0;
   t->completed = fid;
   return 1;
}

static void fences_retired(struct vv_conn *c, uint64_t fid)
{
   uint64_t i, first = c->fence_completed + 1;
   double t;
   if (fid > c->fence_submitted) /* never: ids come from us */
      fid = c->fence_submitted;
   if (fid < first)
      return;
   if (fid - first >= c->log_size)
      first = fid - c->log_size + 1;
   t = now_s();
   pthread_mutex_lock(&log_lock);
   for (i = first; i <= fid; i++) {
      struct vv_fence_rec *rec = &c->log[i % c->log_size];
      if (rec->fence_id == i && rec->retired == 0)
         rec->retired = t;
   }
   pthread_mutex_unlock(&log_lock);
   c->fence_completed = fid;
}

int vv_conn_fences(struct vv_conn *c, uint64_t from_id, struct vv_fence_rec *out, int max)
{
   uint64_t last, i;
   int n = 0;
   pthread_mutex_lock(&log_lock);
   if (!c->log) {
      pthread_mutex_unlock(&log_lock);
      return 0;
   }
   last = c->fence_submitted;
   if (last >= c->log_size && from_id <= last - c->log_size)
      from_id = last - c->log_size + 1;
   if (from_id == 0)
      from_id = 1;
   for (i = from_id; i <= last && n < max; i++) {
      struct vv_fence_rec *rec = &c->log[i % c->log_size];
      if (rec->fence_id == i)
         out[n++] = *rec;
   }
   pthread_mutex_unlock(&log_lock);
   return n;
}

/* ------------------------------------------------------------ output */
static int queue_out(struct vv_conn *c, const void *data, size_t n)
{
   if (c->out_len + n > c->out_cap) {
      size_t ncap = c->out_cap ? c->out_cap : 256;
      uint8_t *p;
      while (ncap < c->out_len + n)
         ncap *= 2;
      p = realloc(c->out, ncap);
      if (!p)
         return -ENOMEM;
      c->out = p;
      c->out_cap = ncap;
   }
   memcpy(c->out + c->out_len, data, n);
   c->out_len += n;
   return 0;
}

/* 0, or an errno that ends the client */
static int send_reply(struct vv_conn *c, const void *data, size_t n)
{
   ssize_t w = 0;
   if (!c->out_len && !c->py_out_busy) {
      do {
         w = send(c->fd, data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
      } while (w < 0 && errno == EINTR);
      if (w < 0) {
         if (errno != EAGAIN && errno != EWOULDBLOCK)
            return errno;
         w = 0;
      }
   }
   if ((size_t)w < n && queue_out(c, (const uint8_t *)data + w, n - (size_t)w))
      return ENOMEM;
   return 0;
}

static int busy_wait_reply(struct vv_conn *c, uint32_t busy)
{
   uint32_t msg[3] = {1, VV_CMD_RESOURCE_BUSY_WAIT, busy};
   return send_reply(c, msg, sizeof(msg));
}

size_t vv_conn_output_size(const struct vv_conn *c) { return c->out_len; }

size_t vv_conn_take_output(struct vv_conn *c, uint8_t *dst, size_t cap)
{
   size_t n = c->out_len < cap ? c->out_len : cap;
   memcpy(dst, c->out, n);
   memmove(c->out, c->out + n, c->out_len - n);
   c->out_len -= n;
   return n;
}

/* ------------------------------------------------------------ input */
size_t vv_conn_input_size(const struct vv_conn *c) { return c->in_len - c->in_pos; }

size_t vv_conn_take_input(struct vv_conn *c, uint8_t *dst, size_t cap)
{
   size_t avail = c->in_len - c->in_pos, n = avail < cap ? avail : cap;
   memcpy(dst, c->in + c->in_pos, n);
   c->in_pos += n;
   if (c->in_pos == c->in_len)
      c->in_pos = c->in_len = 0;
   return n;
}

/* Reads what the socket has (room for at least `want` more bytes).
 * 1: read something, 0: nothing there, -1: EOF, -2: error (err_errno). */
static int fill(struct vv_conn *c, size_t want)
{
   ssize_t r;
   if (c->in_pos && c->in_pos == c->in_len) {
      c->in_pos = c->in_len = 0;
   } else if (c->in_pos && c->in_cap - c->in_len < want) {
      memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
      c->in_len -= c->in_pos;
      c->in_pos = 0;
   }
   if (want < RECV_CHUNK)
      want = RECV_CHUNK;
   if (c->in_cap - c->in_len < want) {
      size_t ncap = c->in_cap ? c->in_cap : RECV_CHUNK;
      uint8_t *p;
      while (ncap - c->in_len < want)
         ncap *= 2;
      p = realloc(c->in, ncap);
      if (!p) {
         c->err_errno = ENOMEM;
         return -2;
      }
      c->in = p;
      c->in_cap = ncap;
   }
   do {
      r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
   } while (r < 0 && errno == EINTR);
   if (r > 0) {
      c->in_len += (size_t)r;
      return 1;
   }
   if (r == 0) {
      c->eof = 1;
      return -1;
   }
   if (errno == EAGAIN || errno == EWOULDBLOCK)
      return 0;
   if (errno == ECONNRESET) { /* gone without a clean close: same as EOF */
      c->eof = 1;
      return -1;
   }
   c->err_errno = errno;
   return -2;
}

static uint32_t rd32(const uint8_t *p)
{
   uint32_t v;
   memcpy(&v, p, 4);
   return v;
}

static int fail(struct vv_conn *c, uint32_t cmd, const char *fmt, ...)
   __attribute__((format(printf, 3, 4)));

static int fail(struct vv_conn *c, uint32_t cmd, const char *fmt, ...)
{
   va_list ap;
   va_start(ap, fmt);
   vsnprintf(c->err_msg, sizeof(c->err_msg), fmt, ap);
   va_end(ap);
   c->err_cmd = cmd;
   return VV_FAST_ERROR;
}

long vv_frame_body(const struct vv_conn *c, uint32_t len, uint32_t cmd)
{
   switch (cmd) {
   case VV_CMD_SUBMIT_CMD:
      if (!c->ctx_id || (uint64_t)len * 4 > limits.message_bytes)
         return -1;
      return (long)len * 4;
   case VV_CMD_TRANSFER_GET2:
      return len == VV_TRANSFER2_HDR_SIZE ? VV_TRANSFER2_HDR_SIZE * 4 : -1;
   case VV_CMD_TRANSFER_PUT2:
      /* Mesa's length counts the data in the shm: 10 + ceil(data_size/4). */
      return len >= VV_TRANSFER2_HDR_SIZE ? VV_TRANSFER2_HDR_SIZE * 4 : -1;
   case VV_CMD_RESOURCE_BUSY_WAIT:
      return len == VV_BUSY_WAIT_SIZE && c->ctx_id ? VV_BUSY_WAIT_SIZE * 4 : -1;
   case VV_CMD_RESOURCE_CREATE2:
      return len == VV_RES_CREATE2_SIZE && c->ctx_id ? VV_RES_CREATE2_SIZE * 4 : -1;
   case VV_CMD_RESOURCE_UNREF:
      return len == 1 && c->ctx_id ? 4 : -1;
   default:
      return -1;
   }
}

/* body is 4-byte aligned, as virgl_renderer_submit_cmd requires (virglrenderer.h; 1.x
 * fails with EFAULT): the input buffer is malloc'ed and only ever consumed in whole
 * messages of whole dwords. */
static int do_submit(struct vv_conn *c, uint8_t *body, uint32_t ndw)
{
   int rc;
   if (ndw) {
      struct vv_rewrite_error e;
      rc = vv_rewrite_cmds(c->map, (uint32_t *)body, ndw, &e);
      if (rc) {
         char why[192];
         return fail(c, VV_CMD_SUBMIT_CMD, "%s", vv_rewrite_describe(&e, 0, why, sizeof(why)));
      }
      rc = virgl_renderer_submit_cmd(body, (int)c->ctx_id, (int)ndw);
      if (rc)
         return fail(c, VV_CMD_SUBMIT_CMD, "virgl_renderer_submit_cmd failed (errno %d)",
                     rc < 0 ? -rc : rc);
   }
   c->submits++;
   c->bytes_submitted += (uint64_t)ndw * 4;
   /* One fence per submit, made while its GL context is current. */
   rc = vv_conn_fence(c, 0);
   if (rc)
      return fail(c, VV_CMD_SUBMIT_CMD, "virgl_renderer_context_create_fence failed (errno %d)",
                  rc < 0 ? -rc : rc);
   return -1;
}

/* ------------------------------------------------------------ resources owned here */
static int log_event(struct vv_conn *c, uint32_t kind, uint32_t client)
{
   if (c->ev_n == c->ev_cap) {
      size_t ncap = c->ev_cap ? c->ev_cap * 2 : 64;
      struct vv_ev *n = realloc(c->ev, ncap * sizeof(*n));
      if (!n)
         return -ENOMEM;
      c->ev = n;
      c->ev_cap = ncap;
   }
   c->ev[c->ev_n++] = (struct vv_ev){kind, client};
   c->res_events = c->ev_n;
   return 0;
}

/* Unref an owned resource and free what backs it; the entry is removed. */
static void destroy_owned(struct vv_conn *c, struct vv_res *r)
{
   vv_resource_release(r->server);
   vv_res_id_release(r->server);
   if (r->shm)
      munmap(r->shm, r->shm_size);
   free(r->iov);
   if (c->map)
      vv_map_remove(c->map, r->client);
   if (r->py_known) {
      log_event(c, VV_RES_DESTROYED, r->client); /* Python drops its record */
   } else {
      size_t i; /* Python never saw it: forget its CREATED event */
      for (i = c->ev_n; i-- > 0;) {
         if (c->ev[i].kind == VV_RES_CREATED && c->ev[i].client == r->client) {
            memmove(c->ev + i, c->ev + i + 1, (c->ev_n - i - 1) * sizeof(*c->ev));
            c->ev_n--;
            break;
         }
      }
      c->res_events = c->ev_n;
   }
   res_drop(c->res, r);
   r->shm = NULL;
   r->iov = NULL;
}

int vv_conn_destroy_resource(struct vv_conn *c, uint32_t client)
{
   struct vv_res *r = c->res ? res_find(c->res, client) : NULL;
   if (!r || !r->owned)
      return -ENOENT;
   virgl_renderer_submit_cmd(empty_cmd, (int)c->ctx_id, 0);
   destroy_owned(c, r);
   return 0;
}

int vv_conn_take_res_events(struct vv_conn *c, struct vv_res_event *out, int max)
{
   int n = 0;
   size_t i = 0;
   for (; i < c->ev_n && n < max; i++) {
      struct vv_res_event *e = &out[n];
      memset(e, 0, sizeof(*e));
      e->kind = c->ev[i].kind;
      e->client = c->ev[i].client;
      if (e->kind == VV_RES_CREATED) {
         struct vv_res *r = res_find(c->res, e->client);
         if (!r || r->py_known)
            continue;
         r->py_known = 1;
         e->server = r->server;
         e->target = r->target;
         e->format = r->format;
         e->bind = r->bind;
         e->width = r->width;
         e->height = r->height;
         e->depth = r->depth;
         e->array_size = r->array_size;
         e->last_level = r->last_level;
         e->nr_samples = r->nr_samples;
         e->shm_size = r->shm_size;
         e->created = r->created;
      }
      n++;
   }
   if (i) /* c->ev is NULL until the first event: memmove(NULL, ...) is undefined */
      memmove(c->ev, c->ev + i, (c->ev_n - i) * sizeof(*c->ev));
   c->ev_n -= i;
   c->res_events = c->ev_n;
   return n;
}

/* 16 bytes a texel, a full mip chain (at most twice the base), 64 KiB of slack:
 * at least what any resource of this shape needs, saturated at 2^64 - 1. */
uint64_t vv_texture_upper(uint32_t width, uint32_t height, uint32_t depth,
                          uint32_t array_size, uint32_t nr_samples, uint32_t last_level)
{
   unsigned __int128 texels = (unsigned __int128)max1(width) * max1(height) * max1(depth) *
                              max1(array_size) * max1(nr_samples);
   unsigned __int128 b = texels * 16 * (last_level ? 2 : 1) + (1u << 16);
   return b > UINT64_MAX ? UINT64_MAX : (uint64_t)b;
}

uint64_t vv_shm_bound(uint32_t width, uint32_t height, uint32_t depth, uint32_t array_size,
                      uint32_t nr_samples, uint32_t last_level)
{
   uint64_t b = vv_texture_upper(width, height, depth, array_size, nr_samples, last_level);
   return b > limits.shm_bytes_per_resource ? limits.shm_bytes_per_resource : b;
}

static int send_fd(int sock, int fd)
{
   char byte = 0, ctl[CMSG_SPACE(sizeof(int))];
   struct iovec iov = {&byte, 1};
   struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                      .msg_controllen = sizeof(ctl)};
   struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
   ssize_t w;
   memset(ctl, 0, sizeof(ctl));
   cm->cmsg_level = SOL_SOCKET;
   cm->cmsg_type = SCM_RIGHTS;
   cm->cmsg_len = CMSG_LEN(sizeof(int));
   memcpy(CMSG_DATA(cm), &fd, sizeof(int));
   do {
      w = sendmsg(sock, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
   } while (w < 0 && errno == EINTR);
   return w == 1 ? 0 : (w < 0 ? errno : EAGAIN);
}

/* RESOURCE_CREATE2 of a protocol 0-2 client. -1: done; VV_FAST_SLOW:
 * Python's (nothing was done); else a status. */
static int do_create2(struct vv_conn *c, const uint8_t *p)
{
   uint32_t f[VV_RES_CREATE2_SIZE], i;
   struct virgl_renderer_resource_create_args args;
   struct vv_res src, *r;
   uint64_t size, est = 0;
   int rc, err, fd = -1;
   char name[32];
   for (i = 0; i < VV_RES_CREATE2_SIZE; i++)
      f[i] = rd32(p + 4 * i);
   size = f[10];
   /* Protocol 3 (server ids, a reply), a resource too large for the upper bound
    * to admit it (Python's estimate is exact) and an fd that would overtake output
    * already queued are Python's; the rest is checked here, as Python checks it
    * (vv_conn_check_create). */
   if (c->protocol_version >= 3 ||
       (est = vv_texture_upper(f[4], f[5], f[6], f[7], f[9], f[8])) > C_PATH_MAX_EST ||
       vv_conn_admit(c, size, est) || (size && (c->out_len || c->py_out_busy)))
      return VV_FAST_SLOW;
   if (vv_conn_check_create(c, VV_CMD_RESOURCE_CREATE2, f[0], f + 1, size))
      return VV_FAST_ERROR;
   virgl_renderer_submit_cmd(empty_cmd, (int)c->ctx_id, 0);
   src = (struct vv_res){.client = f[0], .target = f[1], .format = f[2], .bind = f[3],
                         .width = f[4], .height = f[5], .depth = f[6], .array_size = f[7],
                         .last_level = f[8], .nr_samples = f[9], .shm_size = size,
                         .est = est, .owned = 1, .created = now_s()};
   src.server = vv_res_id_alloc();
   if (!src.server)
      return fail(c, VV_CMD_RESOURCE_CREATE2, "no free resource id");
   args = (struct virgl_renderer_resource_create_args){
      src.server, f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], 0};
   rc = virgl_renderer_resource_create(&args, NULL, 0);
   if (rc) {
      vv_res_id_release(src.server);
      return fail(c, VV_CMD_RESOURCE_CREATE2, "virgl_renderer_resource_create failed (errno %d)",
                  rc < 0 ? -rc : rc);
   }
   if (size) {
      snprintf(name, sizeof(name), "vtest-res-%u", f[0]);
      src.iov = malloc(sizeof(*src.iov));
      fd = memfd_create(name, MFD_CLOEXEC);
      if (!src.iov || fd < 0 || ftruncate(fd, (off_t)size) ||
          (src.shm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
             MAP_FAILED) {
         err = errno ? errno : ENOMEM;
         if (fd >= 0)
            close(fd);
         free(src.iov);
         virgl_renderer_resource_unref(src.server);
         vv_res_id_release(src.server);
         return fail(c, VV_CMD_RESOURCE_CREATE2, "shared memory of %llu bytes: %s",
                     (unsigned long long)size, strerror(err));
      }
      src.iov->iov_base = src.shm;
      src.iov->iov_len = size;
   }
   r = res_insert(c->res, &src, &err);
   if (r && vv_map_set(c->map, f[0], src.server))
      err = -ENOMEM;
   if (!r || err) {
      if (r)
         res_drop(c->res, r);
      if (fd >= 0)
         close(fd);
      if (src.shm)
         munmap(src.shm, size);
      free(src.iov);
      virgl_renderer_resource_unref(src.server);
      vv_res_id_release(src.server);
      return fail(c, VV_CMD_RESOURCE_CREATE2, "out of memory");
   }
   virgl_renderer_ctx_attach_resource((int)c->ctx_id, (int)src.server);
   log_event(c, VV_RES_CREATED, f[0]);
   if (size) { /* from here on the entry is ours: close destroys it on failure */
      rc = virgl_renderer_resource_attach_iov((int)src.server, r->iov, 1);
      if (rc) {
         close(fd);
         return fail(c, VV_CMD_RESOURCE_CREATE2,
                     "virgl_renderer_resource_attach_iov failed (errno %d)",
                     rc < 0 ? -rc : rc);
      }
      err = send_fd(c->fd, fd);
      close(fd); /* the mapping keeps the memory; the client has its copy */
      if (err == EAGAIN) /* a client waiting for this fd never fills the socket */
         return fail(c, VV_CMD_RESOURCE_CREATE2, "socket full while sending the shm fd");
      if (err) {
         c->err_errno = err;
         return VV_FAST_SOCKERR;
      }
   }
   return -1;
}

/* RESOURCE_UNREF of a resource owned here, unless a scanout observer must
 * see its last frame first (then Python's). */
static int do_unref(struct vv_conn *c, const uint8_t *p)
{
   uint32_t server;
   struct vv_res *r = res_find(c->res, rd32(p));
   if (!r)
      return vv_conn_check_owned(c, VV_CMD_RESOURCE_UNREF, rd32(p), &server);
   if (!r->owned ||
       (c->notify_present && (r->bind & (VV_BIND_DISPLAY_TARGET | VV_BIND_SCANOUT))))
      return VV_FAST_SLOW;
   virgl_renderer_submit_cmd(empty_cmd, (int)c->ctx_id, 0);
   destroy_owned(c, r);
   return -1;
}

static uint32_t note_present(struct vv_conn *c, struct vv_res *r)
{
   double t = now_s();
   uint32_t n;
   r->last_present_at = t;
   if (c->present_interval > 0 && r->last_report > 0 &&
       t - r->last_report < c->present_interval) {
      r->skipped++;
      r->skipped_submits = c->submits;
      r->skipped_at = t;
      return 0;
   }
   n = r->skipped + 1;
   r->skipped = 0;
   /* Keep the reports on a grid of the interval while presents come often:
    * measured from the late report instead, each interval would grow by the
    * guest's frame time (60 Hz would become 54 for a 300 FPS guest). */
   if (c->present_interval > 0 && r->last_report > 0 &&
       t - r->last_report < 2 * c->present_interval)
      r->last_report += c->present_interval;
   else
      r->last_report = t;
   return n;
}

uint32_t vv_conn_note_present(struct vv_conn *c, uint32_t client)
{
   struct vv_res *r = res_find(c->res, client);
   c->presents++;
   return r ? note_present(c, r) : 1;
}

int vv_conn_attach_ring(struct vv_conn *c, uint32_t client, struct vv_ring *ring)
{
   struct vv_res *r = c->res ? res_find(c->res, client) : NULL;
   int k;
   for (k = 0; k < c->n_ringed; k++)
      if (c->ringed[k] == client)
         break;
   if (!ring) {
      if (r)
         r->ring = NULL;
      if (k < c->n_ringed)
         c->ringed[k] = c->ringed[--c->n_ringed];
      return 0;
   }
   if (!r)
      return -ENOENT;
   if (k == c->n_ringed) {
      if (c->n_ringed == VV_MAX_RINGED)
         return -ENOSPC; /* its presents stay Python's */
      c->ringed[c->n_ringed++] = client;
   }
   r->ring = ring;
   return 0;
}

/* A present the rate limit held back, still unshown one interval after the last
 * report: shown now if the guest sent nothing since (the target still holds it),
 * else only counted (its next present brings a newer frame). */
static void catch_up(struct vv_conn *c, double now, double *next)
{
   int k;
   for (k = 0; k < c->n_ringed; k++) {
      struct vv_res *r = res_find(c->res, c->ringed[k]);
      double due;
      if (!r || !r->ring || !r->skipped)
         continue;
      due = r->last_report + c->present_interval;
      if (due > now) {
         if (*next == 0 || due < *next)
            *next = due;
         continue;
      }
      if (r->skipped_submits != c->submits ||
          !vv_ring_present(r->ring, r->server, r->skipped_at, r->skipped))
         vv_ring_note_present(r->ring, r->skipped_at, r->skipped);
      r->skipped = 0;
      /* last_report stays: a present coming now is still due for the screen */
   }
}

/* Runs the catch-ups due; the next one's time, 0 if none. */
static double catch_ups(void)
{
   double now = now_s(), next = 0;
   size_t i;
   for (i = 0; i < nconns; i++)
      if (conns[i]->n_ringed && !conns[i]->closed)
         catch_up(conns[i], now, &next);
   return next;
}

uint32_t vv_conn_take_skipped_presents(struct vv_conn *c, uint32_t client, double *last,
                                       int *fresh)
{
   struct vv_res *r = res_find(c->res, client);
   uint32_t n;
   if (!r || !r->skipped)
      return 0;
   n = r->skipped;
   r->skipped = 0;
   *last = r->skipped_at;
   *fresh = r->skipped_submits == c->submits;
   if (*fresh)
      r->last_report = now_s();
   return n;
}

int vv_put2_length_ok(uint32_t len, uint32_t data_size)
{
   /* Mesa's length counts the data in the shm: 10 + ceil(data_size/4); or just 10 */
   return len == VV_TRANSFER2_HDR_SIZE ||
          (uint64_t)len - VV_TRANSFER2_HDR_SIZE == ((uint64_t)data_size + 3) / 4;
}

int vv_conn_check_owned(struct vv_conn *c, uint32_t cmd, uint32_t handle, uint32_t *server)
{
   struct vv_res *r = res_find(c->res, handle);
   if (!r)
      return fail(c, cmd, "resource %u does not belong to this client", handle);
   *server = r->server;
   return 0;
}

int vv_conn_check_create(struct vv_conn *c, uint32_t cmd, uint32_t handle,
                         const uint32_t shape[VV_RES_SHAPE], uint64_t shm_size)
{
   /* shape: target, format, bind, width, height, depth, array_size, last_level,
    * nr_samples (RESOURCE_CREATE2's order after the handle) */
   if (c->protocol_version >= 3) {
      if (handle)
         return fail(c, cmd, "protocol 3 resources take server ids (handle must be 0)");
   } else if (!handle) {
      return fail(c, cmd, "resource handle 0");
   } else if (res_find(c->res, handle)) {
      return fail(c, cmd, "resource %u already exists", handle);
   }
   if (shm_size > vv_shm_bound(shape[3], shape[4], shape[5], shape[6], shape[8], shape[7]))
      return fail(c, cmd, "data_size %llu is larger than a %ux%ux%u resource needs",
                  (unsigned long long)shm_size, shape[3], shape[4], shape[5]);
   return 0;
}

int vv_conn_check_transfer(struct vv_conn *c, uint32_t cmd, uint32_t handle, uint32_t level,
                           const uint32_t box[6], int64_t shm_offset, uint32_t *server)
{
   uint32_t lw, lh, ld;
   struct vv_res *r = res_find(c->res, handle);
   if (!r)
      return vv_conn_check_owned(c, cmd, handle, server);
   if (level > r->last_level)
      return fail(c, cmd, "level %u > last level %u", level, r->last_level);
   level_extent(r, level, &lw, &lh, &ld);
   if ((uint64_t)box[0] + box[3] > lw || (uint64_t)box[1] + box[4] > lh ||
       (uint64_t)box[2] + box[5] > ld)
      return fail(c, cmd, "box %u,%u,%u %ux%ux%u outside resource %u level %u (%ux%ux%u)",
                  box[0], box[1], box[2], box[3], box[4], box[5], handle, level, lw, lh, ld);
   if (shm_offset >= 0 && !r->shm_size)
      return fail(c, cmd, "resource %u has no shm", handle);
   /* Like upstream, data_size is advisory (Mesa sends its padded layout size);
    * virglrenderer checks the bytes the box really touches against the iov. */
   if (shm_offset >= 0 && (uint64_t)shm_offset >= r->shm_size)
      return fail(c, cmd, "offset %lld outside the %llu-byte shm of resource %u",
                  (long long)shm_offset, (unsigned long long)r->shm_size, handle);
   *server = r->server;
   return 0;
}

/* -1: done, else a status to return. */
static int do_transfer(struct vv_conn *c, uint32_t cmd, const uint8_t *p)
{
   uint32_t handle = rd32(p), level = rd32(p + 4), offset = rd32(p + 36), server, i;
   uint32_t b[6];
   struct virgl_box box;
   struct vv_res *r;
   int rc;
   for (i = 0; i < 6; i++)
      b[i] = rd32(p + 8 + 4 * i);
   if (cmd == VV_CMD_TRANSFER_PUT2) { /* framing first, as the codec */
      uint32_t len = rd32(c->in + c->in_pos - 8), size = rd32(p + 32);
      if (!vv_put2_length_ok(len, size))
         return fail(c, cmd, "length %u matches neither %u nor data_size %u", len,
                     VV_TRANSFER2_HDR_SIZE, size);
   }
   if (vv_conn_check_transfer(c, cmd, handle, level, b, offset, &server))
      return VV_FAST_ERROR;
   r = res_find(c->res, handle);
   box = (struct virgl_box){b[0], b[1], b[2], b[3], b[4], b[5]};
   /* vrend transfers in whatever GL context is current: make it ours. */
   virgl_renderer_submit_cmd(empty_cmd, (int)c->ctx_id, 0);
   if (cmd == VV_CMD_TRANSFER_GET2)
      rc = virgl_renderer_transfer_read_iov(r->server, c->ctx_id, level, 0, 0, &box, offset,
                                            NULL, 0);
   else
      rc = virgl_renderer_transfer_write_iov(r->server, c->ctx_id, level, 0, 0, &box,
                                             offset, NULL, 0);
   if (rc)
      return fail(c, cmd, "%s failed (errno %d)",
                  cmd == VV_CMD_TRANSFER_GET2 ? "virgl_renderer_transfer_read_iov"
                                           : "virgl_renderer_transfer_write_iov",
                  rc < 0 ? -rc : rc);
   if (cmd == VV_CMD_TRANSFER_GET2 && c->notify_present &&
       (r->bind & (VV_BIND_DISPLAY_TARGET | VV_BIND_SCANOUT))) {
      uint32_t n;
      c->presents++;
      n = note_present(c, r);
      if (n && r->ring && vv_ring_present(r->ring, r->server, r->last_present_at, n))
         return -1; /* shown without Python */
      if (n) {
         c->present_handle = handle;
         c->present_count = n;
         return VV_FAST_PRESENT;
      }
   }
   return -1;
}

/* The fences a parked client waited for retired: answer its BUSY_WAIT, or
 * nothing if it was parked before a readback (that message comes next).
 * 0 or an errno. */
static int unpark(struct vv_conn *c)
{
   int xfer = c->park_xfer;
   c->parked = c->park_xfer = 0;
   return xfer ? 0 : busy_wait_reply(c, 0);
}

int vv_conn_pump(struct vv_conn *c)
{
   int handled = 0, rc;
   if (!c->in && c->fd < 0)
      return VV_FAST_SOCKERR;
   for (;;) {
      size_t avail = c->in_len - c->in_pos;
      uint32_t len, cmd;
      long body;
      uint8_t *p;

      if (c->parked && c->fence_completed >= c->fence_submitted) {
         if ((c->err_errno = unpark(c)) != 0)
            return VV_FAST_SOCKERR;
         continue;
      }
      if (c->parked) {
         /* A well-behaved client sends nothing until it gets the reply. */
         if (!c->eof) {
            rc = fill(c, 0);
            if (rc == -2)
               return VV_FAST_SOCKERR;
            if (rc == 1 && c->in_len - c->in_pos > limits.parked_input_bytes) {
               c->reader_paused = 1;
               return VV_FAST_PAUSE;
            }
         }
         return c->eof ? VV_FAST_EOF : VV_FAST_PARKED;
      }
      if (avail < 8) {
         if (c->eof)
            return VV_FAST_EOF;
         rc = fill(c, 8 - avail);
         if (rc == 0)
            return VV_FAST_NEED_DATA;
         if (rc == -2)
            return VV_FAST_SOCKERR;
         continue;
      }
      p = c->in + c->in_pos;
      len = rd32(p);
      cmd = rd32(p + 4);
      body = vv_frame_body(c, len, cmd);
      if (body < 0) {
         /* Python's. A small message whose size the header tells is handed
          * over alone (then C goes on); anything else with all that follows. */
         size_t whole = 8 + (size_t)len * 4;
         c->slow_len = 0;
         if (cmd == VV_CMD_CREATE_RENDERER || cmd == VV_CMD_TRANSFER_PUT ||
             cmd == VV_CMD_TRANSFER_PUT2 || (size_t)len * 4 > MAX_HANDOFF)
            return VV_FAST_SLOW;
         if (avail < whole && !c->eof) {
            rc = fill(c, whole - avail);
            if (rc == 1)
               continue;
            if (rc == 0)
               return VV_FAST_NEED_DATA;
            if (rc == -2)
               return VV_FAST_SOCKERR;
         }
         if (avail >= whole)
            c->slow_len = whole;
         return VV_FAST_SLOW;
      }
      if (avail < 8 + (size_t)body) {
         if (c->eof)
            return VV_FAST_EOF;
         rc = fill(c, 8 + (size_t)body - avail);
         if (rc == 0)
            return VV_FAST_NEED_DATA;
         if (rc == -2)
            return VV_FAST_SOCKERR;
         continue;
      }
      if (handled >= BATCH_MESSAGES)
         return VV_FAST_YIELD;
      p += 8;
      /* consumed from here on, unless a check sends it to Python */
      c->in_pos += 8;
      switch (cmd) {
      case VV_CMD_SUBMIT_CMD:
         c->in_pos += (size_t)body;
         rc = do_submit(c, p, (uint32_t)(body / 4));
         break;
      case VV_CMD_TRANSFER_GET2:
         if (c->fence_completed < c->fence_submitted && nconns > 1 &&
             c->protocol_version < 3) {
            /* A readback waits for this client's rendering: done here it would
             * block the render thread, and every other client with it, until
             * llvmpipe finished. Wait for the client's fences instead (the
             * fence poll resumes it) and serve the others meanwhile. Protocol
             * 0-2 only: their every submit is fenced (BUSY_WAIT's own rule). */
            c->in_pos -= 8;
            c->parked = 1;
            c->park_xfer = 1;
            continue;
         }
         /* fall through */
      case VV_CMD_TRANSFER_PUT2:
      case VV_CMD_RESOURCE_CREATE2:
      case VV_CMD_RESOURCE_UNREF:
         rc = cmd == VV_CMD_RESOURCE_CREATE2 ? do_create2(c, p)
              : cmd == VV_CMD_RESOURCE_UNREF ? do_unref(c, p)
                                          : do_transfer(c, cmd, p);
         if (rc == VV_FAST_SLOW) { /* Python reports what is wrong with it */
            c->in_pos -= 8;
            c->slow_len = 8 + (size_t)body;
            return VV_FAST_SLOW;
         }
         c->in_pos += (size_t)body;
         break;
      default: { /* VV_CMD_RESOURCE_BUSY_WAIT */
         uint32_t flags = rd32(p + 4);
         int busy = c->fence_completed < c->fence_submitted;
         c->in_pos += (size_t)body;
         rc = -1;
         if (busy && (flags & VV_BUSY_WAIT_FLAG_WAIT)) {
            c->parked = 1; /* poll_fences answers when the fences retire */
            continue;
         }
         if ((c->err_errno = busy_wait_reply(c, busy ? 1 : 0)) != 0)
            return VV_FAST_SOCKERR;
         break;
      }
      }
      handled++;
      if (rc >= 0)
         return rc;
   }
}

/* ------------------------------------------------------------ poll */
static struct vv_conn *conn_of(uint32_t ctx_id)
{
   size_t i;
   for (i = 0; i < nconns; i++)
      if (conns[i]->ctx_id == ctx_id)
         return conns[i];
   return NULL;
}

static void ready_add(struct vv_conn *c, int status)
{
   size_t j;
   for (j = 0; j < ready_n; j++) {
      if (ready_q[j].token == c->token) {
         if (status >= 0)
            ready_q[j].status = status;
         ready_q[j].fences |= c->want_fence_cb;
         return;
      }
   }
   ready_q[ready_n++] = (struct vv_ready){c->token, status, c->want_fence_cb};
}

/* ------------------------------------------------------------ context teardown
 * virglrenderer's fence thread (thread_sync in vrend_renderer.c, the same in
 * 0.10.4 and 1.1) walks its fence wait list with a saved pointer to the next
 * fence while it waits, unlocked, for the current one (wait_sync).
 * virgl_renderer_context_destroy frees the context's fences still on that list
 * (vrend_free_fences_for_context), so the saved pointer can be a freed fence
 * and the thread unlinks it: SIGSEGV in vrend-sync, a write at address 8 (the
 * freed fence's list links were zeroed). So a context is destroyed only once
 * every fence it was given has retired: a client that leaves with fences in
 * flight gives its context to this list, and the fence poll destroys it when
 * its last fence retires.
 *
 * The same function nulls the context of the fence the thread is waiting on,
 * whichever context that fence belongs to: that retirement is never reported.
 * After every destroy each context with fences in flight (clients' and
 * retiring ones) gets a fresh fence, which retires in its place. */
struct retiring_ctx {
   uint32_t ctx_id;
   uint64_t submitted, completed;
};
static struct retiring_ctx *retiring;
static size_t nretiring, retiring_cap;

static void refence_all(void)
{
   size_t i;
   for (i = 0; i < nconns; i++) {
      struct vv_conn *c = conns[i];
      int rc;
      if (!c->ctx_id || c->fence_completed >= c->fence_submitted)
         continue;
      rc = vv_conn_fence(c, 1);
      if (rc)
         ready_add(c, fail(c, VV_CMD_SUBMIT_CMD,
                           "re-fencing after a context destroy failed (errno %d)",
                           rc < 0 ? -rc : rc));
   }
   for (i = 0; i < nretiring; i++) {
      struct retiring_ctx *r = &retiring[i];
      virgl_renderer_submit_cmd(empty_cmd, (int)r->ctx_id, 0);
      if (virgl_renderer_context_create_fence(r->ctx_id, VIRGL_RENDERER_FENCE_FLAG_MERGEABLE,
                                              0, r->submitted + 1) == 0)
         r->submitted++;
   }
}

static void destroy_context(uint32_t ctx_id)
{
   virgl_renderer_context_destroy(ctx_id);
   refence_all();
   /* vrend leaves the destroyed context's GL context current */
   virgl_renderer_force_ctx_0();
}

int vv_context_retire(uint32_t ctx_id, uint64_t submitted, uint64_t completed)
{
   if (completed >= submitted) {
      destroy_context(ctx_id);
      return 1;
   }
   /* room was reserved when the context was given to its conn (reserve_retiring);
    * a context not made through vv_conn_set_context may still find none */
   if (nretiring == retiring_cap && reserve_retiring(1))
      return -ENOMEM; /* the context stays: a leak, never a crash */
   retiring[nretiring++] = (struct retiring_ctx){ctx_id, submitted, completed};
   return 0;
}

/* Room in the retiring list for every context already retiring and `contexts` more. */
static int reserve_retiring(size_t contexts)
{
   size_t need = nretiring + contexts, ncap = retiring_cap ? retiring_cap : 16;
   struct retiring_ctx *n;
   if (need <= retiring_cap)
      return 0;
   while (ncap < need)
      ncap *= 2;
   n = realloc(retiring, ncap * sizeof(*n));
   if (!n)
      return -ENOMEM;
   retiring = n;
   retiring_cap = ncap;
   return 0;
}

size_t vv_contexts_retiring(void)
{
   return nretiring;
}

void vv_contexts_forget(void)
{
   /* virgl_renderer_cleanup stops the fence thread, then destroys them */
   free(retiring);
   retiring = NULL;
   nretiring = retiring_cap = 0;
}

static void retiring_fence(uint32_t ctx_id, uint64_t fence_id)
{
   size_t i;
   for (i = 0; i < nretiring; i++) {
      if (retiring[i].ctx_id != ctx_id)
         continue;
      if (fence_id < retiring[i].submitted)
         return;
      retiring[i] = retiring[--nretiring];
      destroy_context(ctx_id);
      return;
   }
}

/* Retire the fences virglrenderer reported, answer the BUSY_WAITs they release,
 * go on with those clients in C; queue what Python must see. */
static void retire_fence_events(void)
{
   struct vv_fence_event ev[64];
   int n, i;
   do {
      n = vv_drain_fences(ev, 64);
      for (i = 0; i < n; i++) {
         struct vv_conn *c = conn_of(ev[i].ctx_id);
         int status = -1;
         if (ev[i].ring_idx) { /* a venus queue's timeline: Python signals its syncs */
            if (c && ring_fence_retired(c, ev[i].ring_idx, ev[i].fence_id) &&
                c->want_fence_cb)
               ready_add(c, -1);
            continue;
         }
         if (!c) {
            retiring_fence(ev[i].ctx_id, ev[i].fence_id);
            continue;
         }
         if (ev[i].fence_id <= c->fence_completed)
            continue;
         fences_retired(c, ev[i].fence_id);
         if (c->parked && c->fence_completed >= c->fence_submitted) {
            if ((c->err_errno = unpark(c)) != 0)
               status = VV_FAST_SOCKERR;
            else if (!c->want_fence_cb && !c->reader_paused && !c->py_mode)
               status = vv_conn_pump(c);
            else
               status = VV_FAST_YIELD; /* Python goes on with it */
            if (status == VV_FAST_NEED_DATA && !c->out_len)
               status = -1;
         }
         if (status >= 0 || c->want_fence_cb || c->out_len)
            ready_add(c, status);
      }
   } while (n == 64);
}

static void poll_fences(void)
{
   virgl_renderer_poll();
   retire_fence_events();
}

void vv_fast_poll_context(uint32_t ctx_id)
{
   virgl_renderer_context_poll(ctx_id);
   retire_fence_events();
}

int vv_fast_take_ready(struct vv_ready *out, int max)
{
   size_t n = ready_n < (size_t)max ? ready_n : (size_t)max;
   memcpy(out, ready_q, n * sizeof(*out));
   memmove(ready_q, ready_q + n, (ready_n - n) * sizeof(*out));
   ready_n -= n;
   return (int)n;
}

static struct vv_conn *conn_of_fd(int fd)
{
   size_t i;
   for (i = 0; i < nconns; i++)
      if (conns[i]->fd == fd)
         return conns[i];
   return NULL;
}

static double remaining_ms(double deadline)
{
   double ms = (deadline - now_s()) * 1e3;
   return ms > 0 ? ms : 0;
}

int vv_fast_select(int epfd, double timeout_s, int poll_fd, struct vv_sel_event *out, int max)
{
   struct epoll_event evs[64];
   double deadline = timeout_s >= 0 ? now_s() + timeout_s : 0;
   int nout = 0;
   if (max > 64)
      max = 64;
   for (;;) {
      int tmo, n, i, own = 0;
      double cu = catch_ups();
      if (timeout_s < 0)
         tmo = -1;
      else
         tmo = (int)(remaining_ms(deadline) + 0.999);
      if (cu > 0) {
         int t2 = (int)(remaining_ms(cu) + 0.999);
         if (tmo < 0 || t2 < tmo) {
            tmo = t2;
            own = 1; /* a catch-up's wake-up, not Python's */
         }
      }
      n = epoll_wait(epfd, evs, max, tmo);
      if (n < 0) {
         if (errno == EINTR)
            return 0;
         return -errno;
      }
      for (i = 0; i < n; i++) {
         int fd = evs[i].data.fd;
         uint32_t e = evs[i].events, report = e;
         struct vv_conn *c;
         if (fd == poll_fd && poll_fd >= 0) {
            poll_fences();
            report = ready_n ? EPOLLIN : 0;
         } else if ((e & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (c = conn_of_fd(fd)) != NULL &&
                    !c->py_mode && !c->reader_paused && c->pending_status < 0) {
            int st = vv_conn_pump(c);
            report = e & EPOLLOUT;
            if (!((st == VV_FAST_NEED_DATA || st == VV_FAST_PARKED) && !c->out_len)) {
               c->pending_status = st;
               report |= EPOLLIN;
            }
         }
         if (report) {
            out[nout].fd = fd;
            out[nout].events = report;
            nout++;
         }
      }
      if (nout || (n == 0 && !own) || (timeout_s >= 0 && remaining_ms(deadline) <= 0))
         return nout;
   }
}

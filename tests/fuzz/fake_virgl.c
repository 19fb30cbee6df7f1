/* fake_virgl.c - the fuzz harness' stand-in for libvirglrenderer; see fake_virgl.h.
 * Only the calls native/vv_fast.c, vv_glue.c and the harness make are here. */
#include "fake_virgl.h"
#include "vv_glue.h"
#include "vv_fast.h"
#include "vv_ring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MUST(cond, ...)                                                         \
   do {                                                                         \
      if (!(cond)) {                                                            \
         fprintf(stderr, "fake_virgl: " __VA_ARGS__);                           \
         fprintf(stderr, "\n");                                                 \
         abort();                                                               \
      }                                                                         \
   } while (0)

struct fres {
   uint32_t id, ctx, target, width, height, depth, array_size, last_level;
   struct iovec *iov;
   int niov;
};
struct fctx { uint32_t id; uint64_t last_fence; };
struct ffence { uint32_t ctx; uint64_t id; };

static struct fres *res;
static size_t nres, res_cap;
static struct fctx ctxs[256];
static size_t nctx;
static struct ffence *fences;
static size_t nfences, fences_cap;
static uint32_t fail_mask, fail_after, calls[5], to_retire;
static struct virgl_renderer_callbacks *cbs;
static void *cookie;
char fake_ring;
int fake_ring_result;

void fake_faults(uint32_t mask, uint32_t after)
{
   fail_mask = mask;
   fail_after = after;
   memset(calls, 0, sizeof(calls));
}

void fake_retire(uint32_t n) { to_retire = n; }
uint32_t fake_pending_fences(void) { return (uint32_t)nfences; }

static int faulty(uint32_t kind)
{
   int i = __builtin_ctz(kind);
   return (fail_mask & kind) && ++calls[i] > fail_after;
}

static struct fres *find_res(uint32_t id)
{
   size_t i;
   for (i = 0; i < nres; i++)
      if (res[i].id == id)
         return &res[i];
   return NULL;
}

static struct fctx *find_ctx(uint32_t id)
{
   size_t i;
   for (i = 0; i < nctx; i++)
      if (ctxs[i].id == id)
         return &ctxs[i];
   return NULL;
}

static uint64_t touch(const struct iovec *iov, int n)
{
   /* Reads the first and last byte of each range: a stale or short iov is
    * then ASan's (or the kernel's) to report. */
   uint64_t sum = 0;
   int i;
   for (i = 0; i < n; i++)
      if (iov[i].iov_len)
         sum += ((volatile uint8_t *)iov[i].iov_base)[0] +
                ((volatile uint8_t *)iov[i].iov_base)[iov[i].iov_len - 1];
   return sum;
}

void fake_check_clean(void)
{
   /* A context whose re-fence failed (vv_fast.c refence_all) is never destroyed:
    * a leak the engine accepts when the renderer fails; only then may it stay. */
   int refence_failed = (fail_mask & FAKE_FAIL_FENCE) && calls[1] > fail_after;
   MUST(nres == 0, "%zu resources outlive every client (first: id %u)", nres, res[0].id);
   if (refence_failed && nctx) {
      vv_contexts_forget();
      nctx = 0;
      nfences = 0;
   }
   MUST(nctx == 0, "%zu contexts outlive every client (first: %u)", nctx, ctxs[0].id);
   MUST(nfences == 0, "%zu fences still pending", nfences);
   MUST(vv_contexts_retiring() == 0, "contexts still retiring");
}

/* ---------------------------------------------------------- virglrenderer.h */
int virgl_renderer_init(void *c, int flags, struct virgl_renderer_callbacks *cb)
{
   (void)flags;
   cookie = c;
   cbs = cb;
   return 0;
}

void virgl_renderer_cleanup(void *c) { (void)c; }
void virgl_renderer_force_ctx_0(void) {}

int virgl_renderer_context_create(uint32_t handle, uint32_t nlen, const char *name)
{
   (void)nlen, (void)name;
   if (!handle || find_ctx(handle) || nctx == sizeof(ctxs) / sizeof(ctxs[0]))
      return EINVAL;
   ctxs[nctx++] = (struct fctx){handle, 0};
   return 0;
}

void virgl_renderer_context_destroy(uint32_t handle)
{
   struct fctx *c = find_ctx(handle);
   size_t i;
   MUST(c, "destroy of context %u that does not exist", handle);
   for (i = 0; i < nfences; i++)
      MUST(fences[i].ctx != handle,
           "context %u destroyed with fence %llu in flight (the vrend-sync race)", handle,
           (unsigned long long)fences[i].id);
   for (i = 0; i < nres; i++)
      if (res[i].ctx == handle)
         res[i].ctx = 0; /* vrend detaches its resources */
   *c = ctxs[--nctx];
   /* vrend_free_fences_for_context nulls the context of the fence the sync
    * thread waits on, whichever context it is: it never retires. */
   if (nfences) {
      memmove(fences, fences + 1, (nfences - 1) * sizeof(*fences));
      nfences--;
   }
}

int virgl_renderer_submit_cmd(void *buffer, int ctx_id, int ndw)
{
   volatile uint32_t sum = 0;
   int i;
   MUST(ndw >= 0, "submit of %d dwords", ndw);
   if (!find_ctx((uint32_t)ctx_id))
      return EINVAL;
   for (i = 0; i < ndw; i++) /* all of it is read */
      sum += ((const uint32_t *)buffer)[i];
   (void)sum;
   return ndw && faulty(FAKE_FAIL_SUBMIT) ? EINVAL : 0;
}

int virgl_renderer_context_create_fence(uint32_t ctx_id, uint32_t flags, uint32_t ring_idx,
                                        uint64_t fence_id)
{
   struct fctx *c = find_ctx(ctx_id);
   (void)flags;
   MUST(ring_idx == 0, "fence on ring %u", ring_idx);
   if (!c || faulty(FAKE_FAIL_FENCE))
      return EINVAL;
   MUST(fence_id > c->last_fence, "fence %llu of context %u after %llu",
        (unsigned long long)fence_id, ctx_id, (unsigned long long)c->last_fence);
   c->last_fence = fence_id;
   if (nfences == fences_cap) {
      fences_cap = fences_cap ? 2 * fences_cap : 64;
      fences = realloc(fences, fences_cap * sizeof(*fences));
      MUST(fences, "out of memory");
   }
   fences[nfences++] = (struct ffence){ctx_id, fence_id};
   return 0;
}

void virgl_renderer_poll(void)
{
   /* Retire in order; the glue keeps the newest per context (mergeable). */
   while (to_retire && nfences) {
      struct ffence f = fences[0];
      memmove(fences, fences + 1, (nfences - 1) * sizeof(*fences));
      nfences--;
      to_retire--;
      cbs->write_context_fence(cookie, f.ctx, 0, f.id);
   }
}

/* Venus contexts' own poll fds: the engine's streams make none (no CONTEXT_INIT in C). */
void virgl_renderer_context_poll(uint32_t ctx_id) { (void)ctx_id; }

int virgl_renderer_resource_create(struct virgl_renderer_resource_create_args *args,
                                   struct iovec *iov, uint32_t num_iovs)
{
   MUST(!iov && !num_iovs, "resource created with an iov");
   MUST(args->handle, "resource id 0");
   MUST(!find_res(args->handle), "resource id %u created twice", args->handle);
   /* vrend refuses such shapes */
   if (args->target > 8 || (!args->width && args->target) || faulty(FAKE_FAIL_CREATE))
      return EINVAL;
   if (nres == res_cap) {
      res_cap = res_cap ? 2 * res_cap : 64;
      res = realloc(res, res_cap * sizeof(*res));
      MUST(res, "out of memory");
   }
   res[nres++] = (struct fres){args->handle, 0, args->target, args->width, args->height,
                               args->depth, args->array_size, args->last_level, NULL, 0};
   return 0;
}

void virgl_renderer_resource_unref(uint32_t res_handle)
{
   struct fres *r = find_res(res_handle);
   MUST(r, "unref of resource %u that does not exist", res_handle);
   MUST(!r->iov, "resource %u unref'd with its iov attached (vrend may still write it)",
        res_handle);
   *r = res[--nres];
}

void virgl_renderer_ctx_attach_resource(int ctx_id, int res_handle)
{
   struct fres *r = find_res((uint32_t)res_handle);
   MUST(r, "attach of resource %d that does not exist", res_handle);
   MUST(find_ctx((uint32_t)ctx_id), "attach to context %d that does not exist", ctx_id);
   MUST(!r->ctx || r->ctx == (uint32_t)ctx_id, "resource %d of context %u attached to %d",
        res_handle, r->ctx, ctx_id);
   r->ctx = (uint32_t)ctx_id;
}

int virgl_renderer_resource_attach_iov(int res_handle, struct iovec *iov, int num_iovs)
{
   struct fres *r = find_res((uint32_t)res_handle);
   MUST(r, "iov for resource %d that does not exist", res_handle);
   MUST(!r->iov, "second iov for resource %d", res_handle);
   MUST(num_iovs > 0, "%d iovs", num_iovs);
   touch(iov, num_iovs);
   if (faulty(FAKE_FAIL_ATTACH_IOV))
      return EINVAL;
   r->iov = iov;
   r->niov = num_iovs;
   return 0;
}

void virgl_renderer_resource_detach_iov(int res_handle, struct iovec **iov, int *num_iovs)
{
   struct fres *r = find_res((uint32_t)res_handle);
   MUST(r, "detach of resource %d that does not exist", res_handle);
   if (iov)
      *iov = r->iov;
   if (num_iovs)
      *num_iovs = r->niov;
   r->iov = NULL;
   r->niov = 0;
}

static int transfer(uint32_t handle, uint32_t ctx_id, uint32_t level, struct virgl_box *box,
                    uint64_t offset, struct iovec *iov, int niovs, int write)
{
   struct fres *r = find_res(handle);
   size_t len;
   MUST(r, "transfer of resource %u that does not exist", handle);
   MUST(r->ctx == ctx_id, "context %u transfers resource %u of context %u", ctx_id, handle,
        r->ctx);
   MUST(!iov && !niovs, "transfer with its own iov");
   MUST(r->iov, "transfer of resource %u without an iov", handle);
   MUST(level <= r->last_level, "level %u > last level %u", level, r->last_level);
   MUST(box->w <= UINT32_MAX - box->x && box->h <= UINT32_MAX - box->y &&
           box->d <= UINT32_MAX - box->z,
        "box %u+%u, %u+%u, %u+%u wraps", box->x, box->w, box->y, box->h, box->z, box->d);
   len = r->iov[0].iov_len;
   MUST(offset < len, "offset %llu past the %zu-byte iov", (unsigned long long)offset, len);
   if (write)
      (void)((volatile uint8_t *)r->iov[0].iov_base)[offset];
   else
      ((volatile uint8_t *)r->iov[0].iov_base)[offset] = 0x5a;
   return faulty(FAKE_FAIL_TRANSFER) ? EINVAL : 0;
}

int virgl_renderer_transfer_read_iov(uint32_t handle, uint32_t ctx_id, uint32_t level,
                                     uint32_t stride, uint32_t layer_stride,
                                     struct virgl_box *box, uint64_t offset, struct iovec *iov,
                                     int iovec_cnt)
{
   (void)stride, (void)layer_stride;
   return transfer(handle, ctx_id, level, box, offset, iov, iovec_cnt, 0);
}

int virgl_renderer_transfer_write_iov(uint32_t handle, uint32_t ctx_id, int level,
                                      uint32_t stride, uint32_t layer_stride,
                                      struct virgl_box *box, uint64_t offset, struct iovec *iovec,
                                      unsigned int iovec_cnt)
{
   (void)stride, (void)layer_stride;
   return transfer(handle, ctx_id, (uint32_t)level, box, offset, iovec, (int)iovec_cnt, 1);
}

/* ------------------------------------------- what the Python side provides */
void *_create_gl_context_cb(void *c, int scanout_idx, struct virgl_renderer_gl_ctx_param *param)
{
   (void)c, (void)scanout_idx, (void)param;
   MUST(0, "the fake never makes GL contexts");
   return NULL;
}

void _destroy_gl_context_cb(void *c, void *ctx)
{
   (void)c, (void)ctx;
   MUST(0, "the fake never makes GL contexts");
}

/* ------------------------------------------- native/vv_ring.c (needs GL) */
int vv_ring_present(struct vv_ring *r, uint32_t server_handle, double when, uint32_t count)
{
   (void)when;
   MUST((char *)r == &fake_ring, "present into a ring that is not one");
   MUST(find_res(server_handle), "present of resource %u that does not exist", server_handle);
   MUST(count >= 1, "present of %u frames", count);
   return fake_ring_result;
}

void vv_ring_note_present(struct vv_ring *r, double when, uint32_t count)
{
   (void)when;
   MUST((char *)r == &fake_ring, "present noted in a ring that is not one");
   MUST(count >= 1, "%u presents noted", count);
}

/* A scanout's ring of frames: the render thread copies presents in, the UI leases
 * the newest out (see ring_cdef.h for the calls, vv_present.c for the GL hand-off).
 *
 * Why in C: a guest like glxgears presents over a thousand times a second; the
 * ones shown (one per screen refresh) used to go through Python on the render
 * thread, each holding up the guest's next message for a return to Python and a
 * round of the asyncio loop. Here the C fast path copies them itself, and the
 * UI learns of new frames through an eventfd.
 *
 * Entries: the newest (published, not yet taken), the shown one (taken last by
 * the UI), leased ones (being drawn) and free ones; only a free entry is written.
 * Every draw of the UI fences itself; the render thread waits on those fences on
 * the GPU (glWaitSync) before copying into the entry again.
 */
#define GL_GLEXT_PROTOTYPES 1
#include "vv_ring.h"
#include "vv_present.h"

#include <GL/glcorearb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <virglrenderer.h>

struct vv_ring {
   pthread_mutex_t mu;
   EGLDisplay dpy;
   EGLContext ctx;
   int notify_fd;
   /* render thread only */
   uint32_t tex[VV_RING_N];
   int width, height;
   uint32_t internal_format, virgl_format;
   int y_0_top;
   /* under mu */
   void *copy_fence[VV_RING_N];
   void *ui_fence[VV_RING_N][VV_RING_UI_FENCES];
   int n_ui[VV_RING_N];
   int leases[VV_RING_N];
   uint64_t seq[VV_RING_N];
   double published[VV_RING_N];
   int latest, shown; /* entries, -1: none */
   struct vv_ring_stats st;
   double t_times[VV_RING_TIMES];
   uint32_t n_times[VV_RING_TIMES];
   int times_head, times_len;
};

static double mono_s(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct vv_ring *vv_ring_new(EGLDisplay dpy, EGLContext ctx, int notify_fd)
{
   struct vv_ring *r = calloc(1, sizeof(*r));
   if (!r)
      return NULL;
   pthread_mutex_init(&r->mu, NULL);
   r->dpy = dpy;
   r->ctx = ctx;
   r->notify_fd = notify_fd;
   r->latest = r->shown = -1;
   return r;
}

/* Render thread, presenter current: drop textures and syncs (every frame). */
static void free_gl(struct vv_ring *r)
{
   int i, j;
   pthread_mutex_lock(&r->mu);
   for (i = 0; i < VV_RING_N; i++) {
      for (j = 0; j < r->n_ui[i]; j++)
         vv_gl_delete_sync(r->ui_fence[i][j]);
      r->n_ui[i] = 0;
      vv_gl_delete_sync(r->copy_fence[i]);
      r->copy_fence[i] = NULL;
      r->leases[i] = 0;
      if (r->tex[i])
         vv_gl_delete_texture(r->tex[i]);
      r->tex[i] = 0;
   }
   r->latest = r->shown = -1;
   pthread_mutex_unlock(&r->mu);
}

void vv_ring_release_gl(struct vv_ring *r)
{
   free_gl(r);
   pthread_mutex_lock(&r->mu);
   r->width = r->height = 0;
   pthread_mutex_unlock(&r->mu);
}

void vv_ring_destroy(struct vv_ring *r)
{
   if (!r)
      return;
   pthread_mutex_destroy(&r->mu);
   free(r);
}

int vv_ring_configure(struct vv_ring *r, int width, int height, uint32_t internal_format,
                      uint32_t virgl_format, int y_0_top)
{
   int i;
   r->virgl_format = virgl_format;
   r->y_0_top = y_0_top;
   if (r->tex[0] && r->width == width && r->height == height &&
       r->internal_format == internal_format)
      return 0;
   free_gl(r);
   for (i = 0; i < VV_RING_N; i++)
      r->tex[i] = vv_gl_create_texture(internal_format, width, height);
   r->width = width;
   r->height = height;
   r->internal_format = internal_format;
   return 1;
}

int vv_ring_copy(struct vv_ring *r, uint32_t src_tex, uint32_t src_target)
{
   void *waits[VV_RING_UI_FENCES], *old, *fence;
   int i, idx = -1, nw, j;
   uint64_t one = 1;
   pthread_mutex_lock(&r->mu);
   for (i = 0; i < VV_RING_N; i++)
      if (i != r->latest && i != r->shown && !r->leases[i]) {
         idx = i;
         break;
      }
   if (idx < 0 || !r->tex[idx]) {
      r->st.dropped++;
      pthread_mutex_unlock(&r->mu);
      return 0;
   }
   nw = r->n_ui[idx];
   memcpy(waits, r->ui_fence[idx], sizeof(void *) * nw);
   r->n_ui[idx] = 0;
   old = r->copy_fence[idx];
   r->copy_fence[idx] = NULL;
   pthread_mutex_unlock(&r->mu);

   for (j = 0; j < nw; j++)
      vv_gl_wait_sync(waits[j]); /* GPU-side wait, then deleted */
   vv_gl_delete_sync(old);
   fence = vv_gl_copy_and_fence(src_tex, src_target, r->tex[idx], r->width, r->height);

   pthread_mutex_lock(&r->mu);
   r->copy_fence[idx] = fence;
   r->latest = idx;
   r->st.frames++;
   r->seq[idx] = r->st.frames;
   r->st.last_copy = mono_s();
   /* the frame's time: that of the present it shows (previews: of the copy) */
   r->published[idx] = r->st.last_present > 0 ? r->st.last_present : r->st.last_copy;
   pthread_mutex_unlock(&r->mu);
   if (r->notify_fd >= 0) {
      ssize_t n = write(r->notify_fd, &one, sizeof(one));
      (void)n; /* a full eventfd already wakes the UI */
   }
   return 1;
}

void vv_ring_note_present(struct vv_ring *r, double when, uint32_t count)
{
   int i;
   pthread_mutex_lock(&r->mu);
   r->st.presents += count;
   r->st.last_present = when;
   i = (r->times_head + r->times_len) % VV_RING_TIMES;
   if (r->times_len == VV_RING_TIMES)
      r->times_head = (r->times_head + 1) % VV_RING_TIMES;
   else
      r->times_len++;
   r->t_times[i] = when;
   r->n_times[i] = count;
   pthread_mutex_unlock(&r->mu);
}

int vv_ring_present(struct vv_ring *r, uint32_t server_handle, double when, uint32_t count)
{
   struct virgl_renderer_resource_info info;
   int y_0_top;
   if (virgl_renderer_resource_get_info((int)server_handle, &info))
      return 0;
   y_0_top = (info.flags & 1) != 0; /* VIRGL_RESOURCE_Y_0_TOP */
   if (!r->tex[0] || (int)info.width != r->width || (int)info.height != r->height ||
       info.virgl_format != r->virgl_format || y_0_top != r->y_0_top)
      return 0; /* not what the ring was made for: Python's */
   if (vv_egl_make_current(r->dpy, r->ctx))
      return 0;
   vv_ring_note_present(r, when, count);
   vv_ring_copy(r, info.tex_id, GL_TEXTURE_2D);
   virgl_renderer_force_ctx_0(); /* virglrenderer caches its current context */
   return 1;
}

int vv_ring_take_latest(struct vv_ring *r, struct vv_ring_frame *out)
{
   int i;
   pthread_mutex_lock(&r->mu);
   if (r->latest >= 0) {
      r->shown = r->latest;
      r->latest = -1;
   }
   i = r->shown;
   if (i < 0) {
      pthread_mutex_unlock(&r->mu);
      return 0;
   }
   r->leases[i]++;
   out->index = i;
   out->texture = r->tex[i];
   out->fence = (uintptr_t)r->copy_fence[i];
   out->width = r->width;
   out->height = r->height;
   out->virgl_format = r->virgl_format;
   out->y_0_top = r->y_0_top;
   out->seq = r->seq[i];
   out->time = r->published[i];
   pthread_mutex_unlock(&r->mu);
   return 1;
}

void vv_ring_drawn(struct vv_ring *r, int index, void *ui_fence)
{
   void *oldest = NULL;
   if (index < 0 || index >= VV_RING_N)
      return;
   pthread_mutex_lock(&r->mu);
   if (r->leases[index] > 0)
      r->leases[index]--;
   if (ui_fence) {
      if (r->n_ui[index] == VV_RING_UI_FENCES) {
         /* a frame drawn many times while nothing newer came: keep the newest */
         oldest = r->ui_fence[index][0];
         memmove(r->ui_fence[index], r->ui_fence[index] + 1,
                 sizeof(void *) * (VV_RING_UI_FENCES - 1));
         r->n_ui[index]--;
      }
      r->ui_fence[index][r->n_ui[index]++] = ui_fence;
   }
   pthread_mutex_unlock(&r->mu);
   if (oldest) { /* UI thread, its context current: let that draw finish first */
      glClientWaitSync((GLsync)oldest, GL_SYNC_FLUSH_COMMANDS_BIT, 1000000000ull);
      glDeleteSync((GLsync)oldest);
   }
}

void vv_ring_stats(struct vv_ring *r, struct vv_ring_stats *out)
{
   pthread_mutex_lock(&r->mu);
   *out = r->st;
   pthread_mutex_unlock(&r->mu);
}

double vv_ring_fps(struct vv_ring *r, double now)
{
   double n = 0;
   int k;
   pthread_mutex_lock(&r->mu);
   for (k = r->times_len - 1; k >= 0; k--) {
      int i = (r->times_head + k) % VV_RING_TIMES;
      if (now - r->t_times[i] > 1.0)
         break;
      n += r->n_times[i];
   }
   pthread_mutex_unlock(&r->mu);
   return n;
}

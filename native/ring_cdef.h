/* A scanout's ring of frames (vv_ring.c), shared by the render thread and the UI.
 *
 * Render thread, the presenter context current: vv_ring_configure (re)creates the
 * textures for a size and format (1 if it did: every frame is gone), vv_ring_copy
 * copies a guest texture into a free entry, fences the copy and publishes it (0: every
 * entry busy, the present is dropped). vv_ring_present does a whole present of a guest
 * resource by its server handle (makes the presenter current, copies, hands the
 * current context back to virglrenderer): what the C fast path runs for presents of a
 * display target that has a ring, without Python. Every publish writes 1 to the
 * notify eventfd (if >= 0), which the UI watches.
 * UI thread: vv_ring_take_latest leases the newest frame (0: none yet), vv_ring_drawn
 * ends the lease with the fence of the UI's draw (in the UI's context; the render
 * thread waits on it on the GPU before it reuses the entry).
 * Any thread: vv_ring_stats, vv_ring_fps (presents in the second before `now`).
 * vv_ring_release_gl (render thread, presenter current) deletes the textures and
 * syncs, after which presents go to Python again (vv_ring_present returns 0);
 * vv_ring_destroy (any thread, once nothing refers to it) frees the memory. */
#define VV_RING_N 4

struct vv_ring_frame {
   int index;
   uint32_t texture;
   uintptr_t fence;
   int width, height;
   uint32_t virgl_format;
   int y_0_top;
   uint64_t seq;
   double time; /* of the present this frame shows (time.monotonic's clock) */
};

struct vv_ring_stats {
   uint64_t presents, frames, dropped;
   double last_present, last_copy;
};

struct vv_ring;
struct vv_ring *vv_ring_new(EGLDisplay dpy, EGLContext ctx, int notify_fd);
void vv_ring_release_gl(struct vv_ring *r);
void vv_ring_destroy(struct vv_ring *r);
int vv_ring_configure(struct vv_ring *r, int width, int height, uint32_t internal_format,
                      uint32_t virgl_format, int y_0_top);
int vv_ring_copy(struct vv_ring *r, uint32_t src_tex, uint32_t src_target);
void vv_ring_note_present(struct vv_ring *r, double when, uint32_t count);
int vv_ring_present(struct vv_ring *r, uint32_t server_handle, double when, uint32_t count);
int vv_ring_take_latest(struct vv_ring *r, struct vv_ring_frame *out);
void vv_ring_drawn(struct vv_ring *r, int index, void *ui_fence);
void vv_ring_stats(struct vv_ring *r, struct vv_ring_stats *out);
double vv_ring_fps(struct vv_ring *r, double now);

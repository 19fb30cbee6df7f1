/* A scanout's ring of frames, shared by the render thread and the UI (vv_ring.c). */
#ifndef VV_RING_H
#define VV_RING_H
#include <stdint.h>
#include <EGL/egl.h>

#define VV_RING_N 4
#define VV_RING_UI_FENCES 8
#define VV_RING_TIMES 1024

struct vv_ring_frame {
   int index;
   uint32_t texture;
   uintptr_t fence;
   int width, height;
   uint32_t virgl_format;
   int y_0_top;
   uint64_t seq;
   double time;
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
#endif

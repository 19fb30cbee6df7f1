/* virgl_viewer C glue: the virglrenderer callbacks that must be cheap
 * (make_current, fence retirement) plus EGL and shm helpers. */
#ifndef VV_GLUE_H
#define VV_GLUE_H
#define VIRGL_RENDERER_UNSTABLE_APIS 1
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/uio.h>
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <virglrenderer.h>

/* Opaque in virglrenderer.h; layout from virglrenderer's src/virgl_hw.h. */
struct virgl_box { uint32_t x, y, z, w, h, d; };

struct vv_fence_event { uint32_t ctx_id; uint32_t ring_idx; uint64_t fence_id; };

/* Implemented in Python (cffi extern "Python"), see virgl_viewer/virgl.py. */
void *_create_gl_context_cb(void *cookie, int scanout_idx,
                                   struct virgl_renderer_gl_ctx_param *param);
void _destroy_gl_context_cb(void *cookie, void *ctx);

int vv_renderer_init(void *cookie, EGLDisplay dpy, int flags);
void vv_renderer_cleanup(void);
int vv_drain_fences(struct vv_fence_event *out, int max);
/* Unref a resource whose backing the caller frees next: detach it first. */
void vv_resource_release(uint32_t res_handle);

EGLDisplay vv_egl_surfaceless_display(void);
EGLContext vv_egl_create_context(EGLDisplay dpy, EGLContext share, int major, int minor, int gles);
int vv_egl_destroy_context(EGLDisplay dpy, EGLContext ctx);
int vv_egl_initialize(EGLDisplay dpy, int *major, int *minor);
int vv_egl_terminate(EGLDisplay dpy);
int vv_egl_get_error(void);
int vv_egl_release_current(EGLDisplay dpy);
const char *vv_egl_query_string(EGLDisplay dpy, int name);

void *vv_shm_map(int fd, size_t size);
int vv_shm_unmap(void *ptr, size_t size);
#endif

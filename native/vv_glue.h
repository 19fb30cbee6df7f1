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

/* Implemented in Python (cffi extern "Python"), see virgl_viewer/virgl.py. */
void *_create_gl_context_cb(void *cookie, int scanout_idx,
                            struct virgl_renderer_gl_ctx_param *param);
void _destroy_gl_context_cb(void *cookie, void *ctx);

#include "glue_api.h"
#endif

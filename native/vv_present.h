/* GL helpers for handing guest scanouts to the UI (vv_present.c). */
#ifndef VV_PRESENT_H
#define VV_PRESENT_H
#include <stdint.h>
#include <EGL/egl.h>

int vv_egl_make_current(EGLDisplay dpy, EGLContext ctx);
uint32_t vv_gl_texture_internal_format(uint32_t tex, uint32_t target);
uint32_t vv_gl_create_texture(uint32_t internal_format, int width, int height);
void vv_gl_delete_texture(uint32_t tex);
void *vv_gl_copy_and_fence(uint32_t src, uint32_t src_target, uint32_t dst, int width,
                           int height);
void vv_gl_wait_sync(void *sync);
void vv_gl_delete_sync(void *sync);
#endif

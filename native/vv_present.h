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
/* The UI's draw of one frame (one call instead of ~25 from Python): wait on the
 * frame's copy fence in this context, draw texture `tex` as a quad at NDC rect
 * x0,y0-x1,y1 with the viewer's program, then fence the draw (returned) and flush. */
void *vv_gl_draw_frame(uint32_t prog, int32_t u_rect, int32_t u_flip, int32_t u_ignore_alpha,
                       int32_t u_dim, int32_t u_tex, uint32_t vao, uint32_t sampler,
                       uint32_t tex, void *wait, float x0, float y0, float x1, float y1,
                       int flip, int ignore_alpha, float dim);
/* The UI's 1:1 draw of one frame as a framebuffer blit (llvmpipe copies rows
 * instead of shading every pixel): wait on the frame's copy fence, blit texture
 * `tex` (w x h, through a read framebuffer made for the call) to the bound draw
 * framebuffer at x,y (GL window coordinates, bottom-left), rows reversed unless
 * `y_0_top`; the read binding is restored; fence the blit (returned), flush. */
void *vv_gl_blit_frame(uint32_t tex, void *wait, int w, int h, int x, int y, int y_0_top);
#endif

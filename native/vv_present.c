/* Scanout hand-off on the GPU: copy a guest display target into a
 * viewer-owned texture of the share group and fence the copy.
 *
 * Why: the guest renders its next frame into the same display target right
 * after presenting, so sampling it from the UI would tear. The render thread
 * copies each presented frame into a free buffer of a small ring (GPU to
 * GPU, never through the CPU) and hands the UI the buffer plus a fence; the
 * UI waits on that fence in its own context (glWaitSync) before drawing, and
 * fences its draw so the copy into that buffer later waits for it. This
 * holds on a real GPU; llvmpipe would hide a missing fence.
 */
#define GL_GLEXT_PROTOTYPES 1
#include "vv_present.h"

#include <GL/glcorearb.h>

int vv_egl_make_current(EGLDisplay dpy, EGLContext ctx)
{
   eglBindAPI(EGL_OPENGL_API);
   return eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, ctx) ? 0 : -1;
}

uint32_t vv_gl_texture_internal_format(uint32_t tex, uint32_t target)
{
   GLint fmt = 0;
   GLint binding = 0;
   GLenum query = target == GL_TEXTURE_RECTANGLE ? GL_TEXTURE_BINDING_RECTANGLE
                                                 : GL_TEXTURE_BINDING_2D;
   glGetIntegerv(query, &binding);
   glBindTexture(target, tex);
   glGetTexLevelParameteriv(target, 0, GL_TEXTURE_INTERNAL_FORMAT, &fmt);
   glBindTexture(target, (GLuint)binding);
   return (uint32_t)fmt;
}

uint32_t vv_gl_create_texture(uint32_t internal_format, int width, int height)
{
   GLuint tex = 0;
   glGenTextures(1, &tex);
   glBindTexture(GL_TEXTURE_2D, tex);
   glTexStorage2D(GL_TEXTURE_2D, 1, internal_format, width, height);
   glBindTexture(GL_TEXTURE_2D, 0);
   return tex;
}

void vv_gl_delete_texture(uint32_t tex)
{
   GLuint t = tex;
   glDeleteTextures(1, &t);
}

void vv_gl_wait_sync(void *sync)
{
   /* GPU-side wait (the CPU goes on), then drop the sync object */
   if (sync) {
      glWaitSync((GLsync)sync, 0, GL_TIMEOUT_IGNORED);
      glDeleteSync((GLsync)sync);
   }
}

void *vv_gl_copy_and_fence(uint32_t src, uint32_t src_target, uint32_t dst, int width,
                           int height)
{
   GLsync fence;
   glCopyImageSubData(src, src_target, 0, 0, 0, 0, dst, GL_TEXTURE_2D, 0, 0, 0, 0,
                      width, height, 1);
   fence = glFenceSync(GL_SYNC_GPU_COMMANDS_COMPLETE, 0);
   glFlush();
   return (void *)fence;
}

void vv_gl_delete_sync(void *sync)
{
   if (sync)
      glDeleteSync((GLsync)sync);
}

void *vv_gl_draw_frame(uint32_t prog, int32_t u_rect, int32_t u_flip, int32_t u_ignore_alpha,
                       int32_t u_dim, int32_t u_tex, uint32_t vao, uint32_t sampler,
                       uint32_t tex, void *wait, float x0, float y0, float x1, float y1,
                       int flip, int ignore_alpha, float dim)
{
   GLsync fence;
   if (wait)
      glWaitSync((GLsync)wait, 0, GL_TIMEOUT_IGNORED);
   glUseProgram(prog);
   glUniform4f(u_rect, x0, y0, x1, y1);
   glUniform1i(u_flip, flip);
   glUniform1i(u_ignore_alpha, ignore_alpha);
   glUniform1f(u_dim, dim);
   glUniform1i(u_tex, 0);
   glActiveTexture(GL_TEXTURE0);
   glBindTexture(GL_TEXTURE_2D, tex);
   glBindSampler(0, sampler);
   glBindVertexArray(vao);
   glDisable(GL_BLEND);
   glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
   glBindVertexArray(0);
   glBindSampler(0, 0);
   glBindTexture(GL_TEXTURE_2D, 0);
   glUseProgram(0);
   fence = glFenceSync(GL_SYNC_GPU_COMMANDS_COMPLETE, 0);
   glFlush();
   return (void *)fence;
}

void *vv_gl_blit_frame(uint32_t tex, void *wait, int w, int h, int x, int y, int y_0_top)
{
   GLsync fence;
   GLint bound = 0;
   GLuint fbo = 0;
   if (wait)
      glWaitSync((GLsync)wait, 0, GL_TIMEOUT_IGNORED);
   /* framebuffer objects are per context: one for this call (cheap to make) */
   glGetIntegerv(GL_READ_FRAMEBUFFER_BINDING, &bound);
   glGenFramebuffers(1, &fbo);
   glBindFramebuffer(GL_READ_FRAMEBUFFER, fbo);
   glFramebufferTexture2D(GL_READ_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, tex, 0);
   if (y_0_top)
      glBlitFramebuffer(0, 0, w, h, x, y, x + w, y + h, GL_COLOR_BUFFER_BIT, GL_NEAREST);
   else
      glBlitFramebuffer(0, 0, w, h, x, y + h, x + w, y, GL_COLOR_BUFFER_BIT, GL_NEAREST);
   glBindFramebuffer(GL_READ_FRAMEBUFFER, (GLuint)bound);
   glDeleteFramebuffers(1, &fbo);
   fence = glFenceSync(GL_SYNC_GPU_COMMANDS_COMPLETE, 0);
   glFlush();
   return (void *)fence;
}

/* virgl_viewer C glue.
 *
 * virglrenderer calls make_current on every context switch and
 * write_context_fence on every retired fence; both stay in C. Fence
 * retirements are queued here and drained by the fast path (vv_fast.c,
 * vv_drain_fences) after virgl_renderer_poll() returns, so nothing else runs
 * inside the poll.
 * create/destroy_gl_context are rare and go to the Python GL provider.
 */
#define _GNU_SOURCE
#include "vv_glue.h"
#include "vv_fast.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef EGL_PLATFORM_SURFACELESS_MESA
#define EGL_PLATFORM_SURFACELESS_MESA 0x31DD
#endif
#ifndef EGL_NO_CONFIG_KHR
#define EGL_NO_CONFIG_KHR ((EGLConfig)0)
#endif

#define VV_MAX_FENCE_EVENTS 1024

static EGLDisplay vv_display = EGL_NO_DISPLAY;
static pthread_mutex_t vv_fence_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vv_fence_event vv_fences[VV_MAX_FENCE_EVENTS];
static int vv_nfences;
static __thread int vv_api_bound;

static void bind_gl_api(void)
{
   /* eglBindAPI is per thread: virglrenderer's sync thread needs it too. */
   if (!vv_api_bound) {
      eglBindAPI(EGL_OPENGL_API);
      vv_api_bound = 1;
   }
}

static void vv_write_fence(void *cookie, uint32_t fence)
{
   /* ctx0 fences: we never create any (every fence is a context fence) */
}

static void vv_write_context_fence(void *cookie, uint32_t ctx_id, uint32_t ring_idx,
                                   uint64_t fence_id)
{
   int i;
   pthread_mutex_lock(&vv_fence_lock);
   for (i = 0; i < vv_nfences; i++) {
      if (vv_fences[i].ctx_id == ctx_id && vv_fences[i].ring_idx == ring_idx) {
         if (fence_id > vv_fences[i].fence_id)
            vv_fences[i].fence_id = fence_id;
         pthread_mutex_unlock(&vv_fence_lock);
         return;
      }
   }
   if (vv_nfences < VV_MAX_FENCE_EVENTS) {
      vv_fences[vv_nfences].ctx_id = ctx_id;
      vv_fences[vv_nfences].ring_idx = ring_idx;
      vv_fences[vv_nfences].fence_id = fence_id;
      vv_nfences++;
   }
   pthread_mutex_unlock(&vv_fence_lock);
}

static int vv_make_current(void *cookie, int scanout_idx, virgl_renderer_gl_context ctx)
{
   EGLBoolean ok;
   bind_gl_api();
   ok = eglMakeCurrent(vv_display, EGL_NO_SURFACE, EGL_NO_SURFACE,
                       ctx ? (EGLContext)ctx : EGL_NO_CONTEXT);
   return ok ? 0 : -1;
}

static virgl_renderer_gl_context vv_create_gl_context(void *cookie, int scanout_idx,
                                                      struct virgl_renderer_gl_ctx_param *param)
{
   bind_gl_api();
   return _create_gl_context_cb(cookie, scanout_idx, param);
}

static void vv_destroy_gl_context(void *cookie, virgl_renderer_gl_context ctx)
{
   _destroy_gl_context_cb(cookie, ctx);
}

static void *vv_get_egl_display(void *cookie)
{
   return vv_display;
}

static struct virgl_renderer_callbacks vv_callbacks = {
   .version = 4,
   .write_fence = vv_write_fence,
   .create_gl_context = vv_create_gl_context,
   .destroy_gl_context = vv_destroy_gl_context,
   .make_current = vv_make_current,
   .get_drm_fd = NULL,
   .write_context_fence = vv_write_context_fence,
   .get_server_fd = NULL,
   .get_egl_display = vv_get_egl_display,
};

int vv_renderer_init(void *cookie, EGLDisplay dpy, int flags)
{
   /* Never USE_EGL / USE_GLX: with either, virglrenderer ignores our GL
    * callbacks and makes its own winsys (see FACTS.md). */
   flags &= ~(1 /* USE_EGL */ | (1 << 2) /* USE_GLX */ | (1 << 3) | (1 << 4));
   vv_display = dpy;
   vv_nfences = 0;
   return virgl_renderer_init(cookie, flags, &vv_callbacks);
}

void vv_renderer_cleanup(void)
{
   vv_contexts_forget(); /* the cleanup destroys them after stopping the fence thread */
   virgl_renderer_cleanup(NULL);
   vv_nfences = 0;
}

int vv_drain_fences(struct vv_fence_event *out, int max)
{
   int n;
   pthread_mutex_lock(&vv_fence_lock);
   n = vv_nfences < max ? vv_nfences : max;
   memcpy(out, vv_fences, (size_t)n * sizeof(*out));
   if (n < vv_nfences)
      memmove(vv_fences, vv_fences + n, (size_t)(vv_nfences - n) * sizeof(*out));
   vv_nfences -= n;
   pthread_mutex_unlock(&vv_fence_lock);
   return n;
}

void vv_resource_release(uint32_t res_handle)
{
   /* A resource can outlive its unref: a query object holds the buffer it
    * writes its result into (vrend_create_query takes a reference), and
    * vrend_check_query (vrend_renderer.c, 0.10.4 and 1.1) writes the result
    * into the resource's iov whenever the query is checked, possibly long
    * after the client unref'd it and we unmapped its shm: SIGSEGV. Detached,
    * vrend writes into the resource's own host copy instead (query buffers
    * must have VREND_STORAGE_HOST_SYSTEM_MEMORY, vrend_create_query). */
   virgl_renderer_resource_detach_iov((int)res_handle, NULL, NULL);
   virgl_renderer_resource_unref(res_handle);
}

EGLDisplay vv_egl_surfaceless_display(void)
{
   PFNEGLGETPLATFORMDISPLAYEXTPROC get_platform_display =
      (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
   if (!get_platform_display)
      return EGL_NO_DISPLAY;
   return get_platform_display(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL);
}

EGLContext vv_egl_create_context(EGLDisplay dpy, EGLContext share, int major, int minor, int gles)
{
   EGLint attrs[] = {
      EGL_CONTEXT_MAJOR_VERSION, major,
      EGL_CONTEXT_MINOR_VERSION, minor,
      EGL_NONE, EGL_NONE, EGL_NONE,
   };
   if (!gles && (major > 3 || (major == 3 && minor >= 2))) {
      attrs[4] = EGL_CONTEXT_OPENGL_PROFILE_MASK;
      attrs[5] = EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT;
   }
   eglBindAPI(gles ? EGL_OPENGL_ES_API : EGL_OPENGL_API);
   vv_api_bound = !gles;
   return eglCreateContext(dpy, EGL_NO_CONFIG_KHR, share ? share : EGL_NO_CONTEXT, attrs);
}

int vv_egl_destroy_context(EGLDisplay dpy, EGLContext ctx)
{
   return eglDestroyContext(dpy, ctx) ? 0 : -1;
}

int vv_egl_initialize(EGLDisplay dpy, int *major, int *minor)
{
   return eglInitialize(dpy, major, minor) ? 0 : -1;
}

int vv_egl_terminate(EGLDisplay dpy)
{
   eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
   return eglTerminate(dpy) ? 0 : -1;
}

int vv_egl_get_error(void) { return eglGetError(); }

int vv_egl_release_current(EGLDisplay dpy)
{
   bind_gl_api();
   return eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT) ? 0 : -1;
}

const char *vv_egl_query_string(EGLDisplay dpy, int name) { return eglQueryString(dpy, name); }

void *vv_shm_map(int fd, size_t size)
{
   void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
   return p == MAP_FAILED ? NULL : p;
}

int vv_shm_unmap(void *ptr, size_t size)
{
   return munmap(ptr, size);
}

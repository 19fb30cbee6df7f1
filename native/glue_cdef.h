/* What only cffi needs of virgl_viewer's C glue (vv_glue.c): EGL's types, the Python
 * callbacks, libEGL's own calls; the glue's declarations are glue_api.h. */
typedef void *EGLDisplay;
typedef void *EGLContext;
typedef unsigned int EGLenum;
typedef int EGLint;
typedef unsigned int EGLBoolean;
#define EGL_EXTENSIONS ...

/* Python side of the GL-context provider (create/destroy are rare). */
extern "Python+C" void *_create_gl_context_cb(void *cookie, int scanout_idx,
                                           struct virgl_renderer_gl_ctx_param *param);
extern "Python+C" void _destroy_gl_context_cb(void *cookie, void *ctx);

/* libEGL's own: the handles Qt's context uses (the UI hands them to the render side) */
EGLDisplay eglGetCurrentDisplay(void);
EGLContext eglGetCurrentContext(void);

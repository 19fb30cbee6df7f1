/* virgl_viewer's own C glue (vv_glue.c): its declarations, once, for C (vv_glue.h
 * includes this) and for the binding's cffi (after glue_cdef.h's typedefs; no include
 * guard, no #include). */
struct vv_fence_event { uint32_t ctx_id; uint32_t ring_idx; uint64_t fence_id; };

int vv_renderer_init(void *cookie, EGLDisplay dpy, int flags);
void vv_renderer_cleanup(void);
/* Copies queued context-fence retirements (from write_context_fence) into out;
 * returns how many. Same (ctx, ring) pairs are merged to the newest id. */
int vv_drain_fences(struct vv_fence_event *out, int max);
/* Unref a resource whose backing (shm, iov) the caller frees next: detached first, so
 * virglrenderer never writes into it later (see vv_glue.c). */
void vv_resource_release(uint32_t res_handle);

/* EGL helpers for the providers */
EGLDisplay vv_egl_surfaceless_display(void);
EGLContext vv_egl_create_context(EGLDisplay dpy, EGLContext share, int major, int minor, int gles);
int vv_egl_destroy_context(EGLDisplay dpy, EGLContext ctx);
int vv_egl_initialize(EGLDisplay dpy, int *major, int *minor);
int vv_egl_terminate(EGLDisplay dpy);
int vv_egl_get_error(void);
int vv_egl_release_current(EGLDisplay dpy);
const char *vv_egl_query_string(EGLDisplay dpy, int name);

/* shared memory backing */
void *vv_shm_map(int fd, size_t size);
int vv_shm_unmap(void *ptr, size_t size);

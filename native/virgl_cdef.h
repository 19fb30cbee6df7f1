/* The subset of <virglrenderer.h> (with VIRGL_RENDERER_UNSTABLE_APIS) that virgl_viewer
 * uses, as cffi declarations. Structs end in "...;" and constants are "...": cffi's API
 * mode takes their layouts and values from the installed header when it compiles, so
 * one declaration fits 0.10.4 and 1.x (1.x grew virgl_renderer_gl_ctx_param.compat_ctx
 * and virgl_renderer_resource_info.fd). Only the fields we touch are named. */
typedef void *virgl_renderer_gl_context;
struct virgl_renderer_gl_ctx_param { int version; bool shared; int major_ver; int minor_ver; ...; };
struct virgl_box { uint32_t x, y, z, w, h, d; };  /* ours: opaque in the header (vv_glue.h) */
struct iovec { void *iov_base; size_t iov_len; ...; };

#define VIRGL_RENDERER_THREAD_SYNC ...
#define VIRGL_RENDERER_USE_EXTERNAL_BLOB ...
#define VIRGL_RENDERER_VENUS ...
#define VIRGL_RENDERER_RENDER_SERVER ...
#define VIRGL_RENDERER_FENCE_FLAG_MERGEABLE ...

struct virgl_renderer_resource_create_args {
   uint32_t handle; uint32_t target; uint32_t format; uint32_t bind;
   uint32_t width; uint32_t height; uint32_t depth; uint32_t array_size;
   uint32_t last_level; uint32_t nr_samples; uint32_t flags; ...;
};
struct virgl_renderer_resource_info {
   uint32_t handle; uint32_t virgl_format; uint32_t width; uint32_t height;
   uint32_t depth; uint32_t flags; uint32_t tex_id; uint32_t stride; int drm_fourcc; ...;
};
struct virgl_renderer_resource_create_blob_args {
   uint32_t res_handle; uint32_t ctx_id; uint32_t blob_mem; uint32_t blob_flags;
   uint64_t blob_id; uint64_t size; const struct iovec *iovecs; uint32_t num_iovs; ...;
};

/* The library's version as the build found it (pkg-config; build_native.py),
 * major * 10000 + minor * 100 + micro. */
#define VV_VIRGL_VERSION ...

int virgl_renderer_resource_create(struct virgl_renderer_resource_create_args *args, struct iovec *iov, uint32_t num_iovs);
void virgl_renderer_resource_unref(uint32_t res_handle);
int virgl_renderer_context_create(uint32_t handle, uint32_t nlen, const char *name);
int virgl_renderer_context_create_with_flags(uint32_t ctx_id, uint32_t ctx_flags, uint32_t nlen, const char *name);
void virgl_renderer_context_destroy(uint32_t handle);
int virgl_renderer_submit_cmd(void *buffer, int ctx_id, int ndw);
int virgl_renderer_transfer_read_iov(uint32_t handle, uint32_t ctx_id, uint32_t level, uint32_t stride,
                                     uint32_t layer_stride, struct virgl_box *box, uint64_t offset,
                                     struct iovec *iov, int iovec_cnt);
int virgl_renderer_transfer_write_iov(uint32_t handle, uint32_t ctx_id, int level, uint32_t stride,
                                      uint32_t layer_stride, struct virgl_box *box, uint64_t offset,
                                      struct iovec *iovec, unsigned int iovec_cnt);
void virgl_renderer_get_cap_set(uint32_t set, uint32_t *max_ver, uint32_t *max_size);
void virgl_renderer_fill_caps(uint32_t set, uint32_t version, void *caps);
int virgl_renderer_resource_attach_iov(int res_handle, struct iovec *iov, int num_iovs);
void virgl_renderer_resource_detach_iov(int res_handle, struct iovec **iov, int *num_iovs);
int virgl_renderer_context_create_fence(uint32_t ctx_id, uint32_t flags, uint32_t ring_idx, uint64_t fence_id);
void virgl_renderer_force_ctx_0(void);
void virgl_renderer_ctx_attach_resource(int ctx_id, int res_handle);
void virgl_renderer_ctx_detach_resource(int ctx_id, int res_handle);
int virgl_renderer_resource_get_info(int res_handle, struct virgl_renderer_resource_info *info);
void virgl_renderer_cleanup(void *cookie);
void virgl_renderer_poll(void);
int virgl_renderer_get_poll_fd(void);
int virgl_renderer_context_get_poll_fd(uint32_t ctx_id);
int virgl_renderer_resource_create_blob(const struct virgl_renderer_resource_create_blob_args *args);
int virgl_renderer_resource_export_blob(uint32_t res_id, uint32_t *fd_type, int *fd);

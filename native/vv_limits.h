/* The budgets' C side (vv_fast.c), in plain C that the binding's cffi cdef reads as it is
 * (native/build_native.py lists this file after fast_cdef.h): declared once for both.
 * No include guard (cffi cannot parse one): vv_fast.h includes it once, after struct
 * vv_conn. The values come from virgl_viewer/budgets.py through vv_fast_set_limits. */
struct vv_limits {
   uint64_t message_bytes, parked_input_bytes, resources, shm_bytes_per_resource, shm_bytes,
            mappings, resource_bytes, server_resource_bytes, long_shader_bytes,
            draw_vertices;
};
void vv_fast_set_limits(const struct vv_limits *l);

/* May the client make one more resource with this much shm and estimated storage?
 * 0, or which budget it would pass. */
#define VV_ADMIT_RESOURCES 1
#define VV_ADMIT_SHM_BYTES 2
#define VV_ADMIT_MAPPINGS 3
#define VV_ADMIT_RESOURCE_BYTES 4
#define VV_ADMIT_SERVER_RESOURCE_BYTES 5
int vv_conn_admit(const struct vv_conn *c, uint64_t shm_size, uint64_t est);

/* At least what any resource of this shape stores (16 bytes a texel, a whole mip chain,
 * 64 KiB of slack), and the same capped at shm_bytes_per_resource: the largest shm a
 * resource of this shape may ask for. */
uint64_t vv_texture_upper(uint32_t width, uint32_t height, uint32_t depth,
                          uint32_t array_size, uint32_t nr_samples, uint32_t last_level);
uint64_t vv_shm_bound(uint32_t width, uint32_t height, uint32_t depth, uint32_t array_size,
                      uint32_t nr_samples, uint32_t last_level);

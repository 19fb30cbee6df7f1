/* Resource-handle map and virgl command-stream rewriter (vv_rewrite.c). */
typedef struct vv_handle_map vv_handle_map;

vv_handle_map *vv_map_new(void);
void vv_map_free(vv_handle_map *m);
int vv_map_set(vv_handle_map *m, uint32_t client, uint32_t server);
uint32_t vv_map_get(const vv_handle_map *m, uint32_t client);
uint32_t vv_map_remove(vv_handle_map *m, uint32_t client);
uint32_t vv_map_count(const vv_handle_map *m);

#define VV_RW_OK 0
#define VV_RW_UNKNOWN_HANDLE 1
#define VV_RW_TRUNCATED 2
#define VV_RW_BAD_COMMAND 3

struct vv_rewrite_error { uint32_t offset_dw; uint32_t cmd; uint32_t obj_type; uint32_t handle; int code; };
int vv_rewrite_cmds(const vv_handle_map *m, uint32_t *buf, uint32_t ndw, struct vv_rewrite_error *err);

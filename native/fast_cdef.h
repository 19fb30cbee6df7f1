/* The per-client fast path (vv_fast.c), as cffi declarations. */
#define VV_FAST_NEED_DATA 0
#define VV_FAST_SLOW 1
#define VV_FAST_EOF 2
#define VV_FAST_ERROR 3
#define VV_FAST_PRESENT 4
#define VV_FAST_PARKED 5
#define VV_FAST_PAUSE 6
#define VV_FAST_SOCKERR 7
#define VV_FAST_YIELD 8

struct vv_fence_rec { uint64_t fence_id; double created; double retired; };

struct vv_conn {
   int fd;
   uint32_t ctx_id;
   int notify_present;
   double present_interval;
   int want_fence_cb;
   int py_out_busy;
   int reader_paused;
   int parked;
   int py_mode;
   uint32_t protocol_version;
   size_t res_events;
   uint64_t fence_submitted;
   uint64_t fence_completed;
   uint64_t submits;
   uint64_t bytes_submitted;
   uint64_t presents;
   uint32_t present_handle;
   uint32_t present_count;
   size_t slow_len;
   int pending_status;
   uint32_t err_cmd;
   int err_errno;
   char err_msg[256];
   size_t out_len;
   ...;
};

struct vv_ready { uint32_t token; int status; int fences; };

#define VV_RES_CREATED 1
#define VV_RES_DESTROYED 2
struct vv_res_event {
   uint32_t kind, client, server, target, format, bind, width, height, depth, array_size,
            last_level, nr_samples;
   uint64_t shm_size;
   double created;
};
int vv_conn_take_res_events(struct vv_conn *c, struct vv_res_event *out, int max);
int vv_conn_destroy_resource(struct vv_conn *c, uint32_t client);
uint32_t vv_conn_note_present(struct vv_conn *c, uint32_t client);
int vv_conn_attach_ring(struct vv_conn *c, uint32_t client, struct vv_ring *ring);
uint32_t vv_conn_take_skipped_presents(struct vv_conn *c, uint32_t client, double *last,
                                       int *fresh);
uint32_t vv_res_id_alloc(void);
void vv_res_id_release(uint32_t id);

struct vv_conn *vv_conn_new(int fd, vv_handle_map *map, uint32_t token);
void vv_conn_close(struct vv_conn *c);
void vv_conn_free(struct vv_conn *c);
int vv_conn_set_context(struct vv_conn *c, uint32_t ctx_id);
int vv_conn_pump(struct vv_conn *c);
size_t vv_conn_input_size(const struct vv_conn *c);
size_t vv_conn_take_input(struct vv_conn *c, uint8_t *dst, size_t cap);
size_t vv_conn_output_size(const struct vv_conn *c);
size_t vv_conn_take_output(struct vv_conn *c, uint8_t *dst, size_t cap);
int vv_conn_add_resource(struct vv_conn *c, uint32_t client, uint32_t server,
                         uint32_t target, uint32_t bind, uint32_t width, uint32_t height,
                         uint32_t depth, uint32_t array_size, uint32_t last_level,
                         uint64_t shm_size, uint64_t est);
void vv_conn_remove_resource(struct vv_conn *c, uint32_t client);
int vv_conn_fence(struct vv_conn *c, int switch_first);
struct vv_timeline { uint64_t submitted, completed; };
int vv_conn_ring_fence(struct vv_conn *c, uint32_t ring, uint64_t *id);
struct vv_timeline vv_conn_timeline(struct vv_conn *c, uint32_t ring);
void vv_fast_poll_context(uint32_t ctx_id);
int vv_conn_fences(struct vv_conn *c, uint64_t from_id, struct vv_fence_rec *out, int max);
int vv_fast_take_ready(struct vv_ready *out, int max);
int vv_context_retire(uint32_t ctx_id, uint64_t submitted, uint64_t completed);
size_t vv_contexts_retiring(void);
struct vv_sel_event { int fd; uint32_t events; };
int vv_fast_select(int epfd, double timeout_s, int poll_fd, struct vv_sel_event *out, int max);

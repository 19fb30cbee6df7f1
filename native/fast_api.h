/* The per-client engine's interface (vv_fast.c): declared here once, for C (vv_fast.h
 * includes it after struct vv_conn) and for the binding's cffi cdef (read as it is, after
 * fast_cdef.h's struct vv_conn: no include guard, no #include). */
#define VV_FAST_NEED_DATA 0 /* all input handled; wait for the socket */
#define VV_FAST_SLOW 1      /* Python must handle the next message (slow_len) or all input */
#define VV_FAST_EOF 2       /* the peer hung up; leftover input goes to Python */
#define VV_FAST_ERROR 3     /* drop the client: err_cmd, err_msg */
#define VV_FAST_PRESENT 4   /* a display target was read back: present_handle */
#define VV_FAST_PARKED 5    /* in a BUSY_WAIT until its fences retire */
#define VV_FAST_PAUSE 6     /* parked with too much input: stop watching the socket */
#define VV_FAST_SOCKERR 7   /* recv/send failed: err_errno */
#define VV_FAST_YIELD 8     /* handled a batch; input remains buffered: pump again soon */

struct vv_fence_rec {
   uint64_t fence_id;
   double created; /* CLOCK_MONOTONIC seconds, as Python's time.monotonic() */
   double retired; /* 0 while pending */
};

struct vv_ready { uint32_t token; int status; int fences; };

/* What became of the resources the C path creates (RESOURCE_CREATE2 of
 * protocol 0-2) and destroys (their RESOURCE_UNREF), for Python's mirror
 * (Session.resources, the observers). A resource created and destroyed
 * before Python looked is never reported. CREATED carries its shape; the C
 * path owns its server id and shm until it is destroyed. */
#define VV_RES_CREATED 1
#define VV_RES_DESTROYED 2
struct vv_res_event {
   uint32_t kind, client, server, target, format, bind, width, height, depth, array_size,
            last_level, nr_samples;
   uint64_t shm_size;
   double created;
};
int vv_conn_take_res_events(struct vv_conn *c, struct vv_res_event *out, int max);
/* Unref a resource the C path owns (a RESOURCE_UNREF it left to Python);
 * -ENOENT if it is not one. */
int vv_conn_destroy_resource(struct vv_conn *c, uint32_t client);

/* Presents of display targets are rate-limited for Python: a guest may
 * present far more often than any screen shows (glxgears: 1300/s), and each
 * report costs Python a wakeup. vv_conn_note_present counts a present of
 * `client` and returns how many presents to report now (this one and those
 * skipped before it), or 0 if the last report is younger than
 * present_interval. vv_conn_take_skipped_presents returns the number of
 * presents held back since the last report and counts them as reported,
 * with the time of the last one in *last (CLOCK_MONOTONIC seconds, as
 * Python's time.monotonic) and in *fresh whether no SUBMIT_CMD came after
 * it (the texture still holds what it presented). */
uint32_t vv_conn_note_present(struct vv_conn *c, uint32_t client);
/* Presents of display target `client` are copied into `ring` here, without Python
 * (NULL: no longer); -ENOENT: no such resource, -ENOSPC: too many rings. The ring
 * must outlive the attachment: detach before freeing it. */
int vv_conn_attach_ring(struct vv_conn *c, uint32_t client, struct vv_ring *ring);
uint32_t vv_conn_take_skipped_presents(struct vv_conn *c, uint32_t client, double *last,
                                       int *fresh);

/* Process-global server resource ids (never 0; 0 from alloc: none free). */
uint32_t vv_res_id_alloc(void);
void vv_res_id_release(uint32_t id);

/* A conn for a client socket; token is Python's key for it. NULL on ENOMEM. */
struct vv_conn *vv_conn_new(int fd, vv_handle_map *map, uint32_t token);
/* Detaches the conn from the server (no more fences routed, buffers freed)
 * and destroys the resources it owns. The fence log stays readable until
 * vv_conn_free. */
void vv_conn_close(struct vv_conn *c);
void vv_conn_free(struct vv_conn *c);
/* The client's context now exists: route its fences here. */
int vv_conn_set_context(struct vv_conn *c, uint32_t ctx_id);

int vv_conn_pump(struct vv_conn *c);
/* Moves the unhandled input (from the message VV_FAST_SLOW/EOF stopped at)
 * into dst (up to cap bytes); returns how many. */
size_t vv_conn_input_size(const struct vv_conn *c);
size_t vv_conn_take_input(struct vv_conn *c, uint8_t *dst, size_t cap);
/* Replies the conn could not send at once; Python queues them. */
size_t vv_conn_output_size(const struct vv_conn *c);
size_t vv_conn_take_output(struct vv_conn *c, uint8_t *dst, size_t cap);

/* The C engine's framing of a message (len, cmd): the payload bytes it reads and runs
 * itself, or -1 when it is Python's (another command, a length the codec must judge, no
 * context yet, over the message budget). tests/native/test_engine_codec_agree.py holds
 * it to the codec's framing: whatever this takes, the codec accepts the same way. */
long vv_frame_body(const struct vv_conn *c, uint32_t len, uint32_t cmd);
/* TRANSFER_PUT2's length: 10, or 10 + ceil(data_size / 4) (Mesa counts the shm's data). */
int vv_put2_length_ok(uint32_t len, uint32_t data_size);

/* The one check of a transfer's target, for every transfer command (the C path's and
 * Python's): the resource is this client's, the level and the box (x, y, z, w, h, d) lie
 * inside it and, when shm_offset >= 0, the offset inside its shm. 0 with *server set, or
 * VV_FAST_ERROR with the reason in err_msg (err_cmd = cmd). */
int vv_conn_check_transfer(struct vv_conn *c, uint32_t cmd, uint32_t handle, uint32_t level,
                           const uint32_t box[6], int64_t shm_offset, uint32_t *server);
/* The one check that a command's resource handle is this client's (every command
 * naming a resource, the C path's and Python's): 0 with *server set, or VV_FAST_ERROR
 * with the reason in err_msg. The conn's table is the client's one resource table;
 * Session.resources only mirrors it (fed by this engine's events and by Python's
 * creations, which it adds here first). */
int vv_conn_check_owned(struct vv_conn *c, uint32_t cmd, uint32_t handle, uint32_t *server);
/* The one check of a RESOURCE_CREATE/CREATE2 before anything is made (the C path's and
 * Python's): the handle for the protocol version (0 in protocol 3, else new and not 0)
 * and the shm size against the shape's bound. shape: target, format, bind, width,
 * height, depth, array_size, last_level, nr_samples. 0, or VV_FAST_ERROR with the
 * reason in err_msg. The budgets are vv_conn_admit's. */
#define VV_RES_SHAPE 9
int vv_conn_check_create(struct vv_conn *c, uint32_t cmd, uint32_t handle,
                         const uint32_t shape[VV_RES_SHAPE], uint64_t shm_size);

/* What a client's live resources hold against the budgets (vv_conn_admit's figures):
 * how many, how many are mapped shm, their shm bytes and estimated storage bytes; and
 * when a resource was last added (CLOCK_MONOTONIC seconds, one clock for every
 * process: the main process orders workers' growth by it). */
struct vv_usage {
   uint32_t resources, mappings;
   uint64_t shm_bytes, resource_bytes;
   double grew_at;
};
void vv_conn_usage(const struct vv_conn *c, struct vv_usage *out);

int vv_conn_add_resource(struct vv_conn *c, uint32_t client, uint32_t server,
                         uint32_t target, uint32_t bind, uint32_t width, uint32_t height,
                         uint32_t depth, uint32_t array_size, uint32_t last_level,
                         uint64_t shm_size, uint64_t est);
void vv_conn_remove_resource(struct vv_conn *c, uint32_t client);

/* Fences the context's work so far (after an empty submit when switch_first);
 * returns virglrenderer's code. */
int vv_conn_fence(struct vv_conn *c, int switch_first);
/* A ring's fences (rings > 0: a venus context's queues, retired out of order with
 * respect to the other rings, in order on their own): the last id given and the last
 * retired. Ring 0 is fence_submitted/fence_completed. */
struct vv_timeline { uint64_t submitted, completed; };
/* Fence the context's work on ring ``ring`` (> 0); its id (1, 2, ... per ring) in *id. */
int vv_conn_ring_fence(struct vv_conn *c, uint32_t ring, uint64_t *id);
/* Ring ``ring``'s fences: the last id given and the last retired (0, 0: none yet). */
struct vv_timeline vv_conn_timeline(struct vv_conn *c, uint32_t ring);
/* Retire a context's fences that virglrenderer signals on that context's own poll fd
 * (a venus context's: virgl_renderer_context_get_poll_fd), as the global poll does. */
void vv_fast_poll_context(uint32_t ctx_id);
/* Copies the logged fences with id >= from_id (oldest first). */
int vv_conn_fences(struct vv_conn *c, uint64_t from_id, struct vv_fence_rec *out, int max);

/* The conns (up to max) Python must look at after vv_fast_select retired
 * fences (answering the BUSY_WAITs they release and going on with those
 * clients' input); it reports virglrenderer's poll fd readable for this. */
int vv_fast_take_ready(struct vv_ready *out, int max);

/* Destroy a client's virgl context once all its fences have retired (now, if
 * they have: returns 1; else 0, or -ENOMEM: then it is never destroyed).
 * See vv_fast.c on virglrenderer's fence thread. */
int vv_context_retire(uint32_t ctx_id, uint64_t submitted, uint64_t completed);
size_t vv_contexts_retiring(void);
void vv_contexts_forget(void); /* before virgl_renderer_cleanup */

/* The render thread's event wait (its asyncio selector's select): waits on
 * epfd like epoll_wait, but serves what it can itself: readable clients in
 * C mode are pumped, and poll_fd (virglrenderer's) retires fences; those
 * are reported to Python only when it has something to do (a conn's
 * pending_status, the queue vv_fast_take_ready empties). Returns the events for Python, 0 on
 * timeout or EINTR, -errno on failure. timeout_s < 0: no timeout. */
struct vv_sel_event { int fd; uint32_t events; };
int vv_fast_select(int epfd, double timeout_s, int poll_fd, struct vv_sel_event *out, int max);

/* Resource-handle map and virgl command-stream rewriter (vv_rewrite.c): declared here
 * once, for C (vv_rewrite.h includes this file) and for the binding's cffi cdef (no
 * include guard or #include here: cffi reads it as it is). */
/* ---- handle map ---------------------------------------------------------- */

typedef struct vv_handle_map vv_handle_map;

/* A new empty map, or NULL when out of memory. */
vv_handle_map *vv_map_new(void);

/* Frees the map; NULL is allowed. */
void vv_map_free(vv_handle_map *m);

/*
 * Maps client -> server.
 * Returns 0, -EINVAL if client or server is 0 (0 means "no resource" in the
 * virgl protocol), -EEXIST if client is already mapped (the map is left as
 * it was), -ENOMEM if the table could not grow.
 */
int vv_map_set(vv_handle_map *m, uint32_t client, uint32_t server);

/* The server handle for client, or 0 when client is absent (or 0). */
uint32_t vv_map_get(const vv_handle_map *m, uint32_t client);

/* Removes client; returns its server handle, or 0 when it was absent. */
uint32_t vv_map_remove(vv_handle_map *m, uint32_t client);

/* Number of entries. */
uint32_t vv_map_count(const vv_handle_map *m);

/* ---- command-stream rewriter --------------------------------------------- */

#define VV_RW_OK 0
#define VV_RW_UNKNOWN_HANDLE 1 /* a nonzero resource handle is not in the map */
#define VV_RW_TRUNCATED 2      /* a command's len runs past the buffer end */
#define VV_RW_BAD_COMMAND 3    /* command id >= VIRGL_MAX_COMMANDS (62) */
#define VV_RW_SHADER_UNFINISHED 4 /* BIND/LINK_SHADER of a shader whose text is unfinished */
#define VV_RW_SHADER_STREAM 5  /* long-shader text virglrenderer would not take in order */
#define VV_RW_SHADER_BUDGET 6  /* unfinished long shaders announce more than the budget */
#define VV_RW_DRAW_BUDGET 7    /* a DRAW_VBO asks for more vertices than the budget */

struct vv_rewrite_error {
    uint32_t offset_dw; /* dword offset of the failing command's header */
    uint32_t cmd;       /* its command id (header bits 0-7) */
    uint32_t obj_type;  /* header bits 8-15 (meaningful for CREATE_OBJECT) */
    uint32_t handle;    /* UNKNOWN_HANDLE: the offending client handle; else 0 */
    int code;           /* same as the return value */
};

/*
 * Rewrites, in place, every resource handle in the ndw-dword virgl command
 * buffer buf from the client's number to the server's number found in m.
 * Handle 0 ("none") stays 0. Raw data (inline-write data, constants, shader
 * text, strings, END_TRANSFERS / NOP padding) is never read or changed.
 *
 * Returns VV_RW_OK, or an error code; err (may be NULL) is always filled,
 * with all fields 0 on success. On error, every command before
 * err->offset_dw has been rewritten and the dwords from err->offset_dw on
 * are exactly as they were, so the caller may submit the prefix
 * buf[0 .. offset_dw) (virglrenderer would also have run those commands
 * before stopping) or drop the buffer; it must never submit the rest.
 */
int vv_rewrite_cmds(vv_handle_map *m, uint32_t *buf, uint32_t ndw,
                    struct vv_rewrite_error *err);

/* The reason for a log line of a refused buffer: what err says, its command and where
 * (offset_dw + base_dw: where the buffer sits in the message). Writes at most n bytes
 * to out (NUL-terminated) and returns out. */
char *vv_rewrite_describe(const struct vv_rewrite_error *err, uint32_t base_dw, char *out,
                          size_t n);

/* The budgets the rewriter holds (budgets.py; vv_fast_set_limits passes them on): the
 * announced long-shader text per client, and the vertices one DRAW_VBO asks for. */
void vv_rewrite_set_limits(uint64_t long_shader_bytes, uint64_t draw_vertices);

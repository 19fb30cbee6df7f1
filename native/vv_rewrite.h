/*
 * vv_rewrite.h - per-client resource-handle map and virgl command-stream
 * rewriter.
 *
 * Why: protocol-2 vtest clients number their resources from 1, but
 * virglrenderer's resource ids are global. The server therefore gives every
 * resource its own server-side id and, before a client's SUBMIT_CMD payload
 * reaches virgl_renderer_submit_cmd(), replaces each resource handle in it by
 * the server id; a handle the client does not own is refused. Doing this per
 * dword in Python would be far too slow, so it lives here.
 *
 * How: vv_handle_map is an open-addressing hash table (client id -> server
 * id). vv_rewrite_cmds() walks the command stream exactly as virglrenderer's
 * decoder does (next = cur + len + 1) and, per command id, knows which payload
 * dwords hold resource handles (see docs/virgl-handles.md and
 * virgl_protocol.h). Nothing else in the stream is touched.
 *
 * Threading: no globals. A map may be read (vv_map_get, vv_rewrite_cmds) from
 * several threads at once as long as nobody modifies it concurrently.
 *
 * The declarations handed to cffi live in rewrite_cdef.h and must stay in
 * step with this file.
 */
#ifndef VV_REWRITE_H
#define VV_REWRITE_H

#include <stdint.h>

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
int vv_rewrite_cmds(const vv_handle_map *m, uint32_t *buf, uint32_t ndw,
                    struct vv_rewrite_error *err);

#endif /* VV_REWRITE_H */

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
 * The map also carries what the rewriter follows of the stream's state (long
 * shaders still being sent, see vv_rewrite.c), so vv_rewrite_cmds modifies it.
 * Threading: one thread at a time per map; the only global is the long-shader
 * budget, set at start-up.
 *
 * The declarations are in rewrite_cdef.h, read by C and by the binding's cffi.
 */
#ifndef VV_REWRITE_H
#define VV_REWRITE_H

#include <stddef.h>
#include <stdint.h>

#include "rewrite_cdef.h"

#endif /* VV_REWRITE_H */

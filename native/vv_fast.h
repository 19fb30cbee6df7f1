/*
 * vv_fast.h - the per-client fast path of the vtest server.
 *
 * Why: a virpipe client sends a handful of messages per frame (SUBMIT_CMD,
 * TRANSFER_GET2/PUT2, RESOURCE_BUSY_WAIT); parsing and answering those in
 * Python cost about a fifth of the server's CPU and kept the interpreter (and
 * its lock, shared with the GUI) on the per-frame path. Here they are read,
 * checked, executed and answered in C; fence retirement and the BUSY_WAIT it
 * releases are too. Everything else (handshake, resource creation, syncs,
 * protocol 0 transfers, anything malformed) is handed to the Python session
 * untouched, which parses it with the sans-IO codec and reports errors.
 *
 * How: each client has a vv_conn with its own input buffer. vv_conn_pump()
 * reads the socket and handles complete messages until it meets one it does
 * not take (VV_FAST_SLOW: the bytes from that message on are given to Python
 * with vv_conn_take_input()) or something Python must see (a present, an
 * error, EOF). A message is only taken when its header and every field check
 * exactly as the Python path checks them; otherwise Python sees it and
 * produces the error. The conn mirrors the client's resources (client handle
 * -> server handle, shape, shm size) for transfer checks.
 *
 * Threading: everything runs on the render thread, except vv_conn_fences(),
 * which any thread may call (the fence log has its own lock) as long as the
 * conn is not freed meanwhile.
 */
#ifndef VV_FAST_H
#define VV_FAST_H

#include <stddef.h>
#include <stdint.h>
#include "vv_rewrite.h"

#define VV_MAX_RINGED 16    /* display targets of one client copied in C (more: Python) */

struct vv_ring;

struct vv_fence_rec;

struct vv_conn {
   /* --- read and written by Python --- */
   int fd;
   uint32_t ctx_id;           /* 0 until the virgl context exists */
   int notify_present;        /* return VV_FAST_PRESENT for display targets */
   double present_interval;   /* report a display target's presents at most this often
                                 (seconds; 0: every one), see vv_conn_note_present */
   int want_fence_cb;         /* list this conn for Python when fences retire */
   int py_out_busy;           /* Python has output queued: queue ours behind it */
   int reader_paused;         /* the socket is not watched (see VV_FAST_PAUSE) */
   int parked;                /* answering a BUSY_WAIT when the fences retire */
   int py_mode;               /* Python is parsing this client's input */
   uint32_t protocol_version; /* as negotiated (the C path creates resources below 3) */
   size_t res_events;         /* resource events waiting for vv_conn_take_res_events */
   uint64_t fence_submitted;
   uint64_t fence_completed;
   uint64_t submits;
   uint64_t bytes_submitted;
   uint64_t presents;         /* of display targets, while notify_present */
   /* --- results of the last pump --- */
   uint32_t present_handle;   /* client handle */
   uint32_t present_count;    /* presents of it this report stands for (>= 1) */
   size_t slow_len;           /* VV_FAST_SLOW: the message alone is this long, or 0: all */
   int pending_status;        /* a pump in vv_fast_select stopped here (-1: none) */
   uint32_t err_cmd;
   int err_errno;
   char err_msg[256];
   /* --- private --- */
   vv_handle_map *map;
   uint8_t *in;
   size_t in_pos, in_len, in_cap;
   uint8_t *out;
   size_t out_len, out_cap;
   int eof;
   int closed;
   int park_xfer;             /* parked before a TRANSFER_GET2 (not a BUSY_WAIT) */
   uint32_t token;
   struct vv_res_table *res;
   struct vv_fence_rec *log;
   uint32_t log_size;
   struct vv_ev *ev;
   size_t ev_n, ev_cap;
   uint32_t ringed[VV_MAX_RINGED]; /* resources with a ring (vv_conn_attach_ring) */
   int n_ringed;
   struct vv_timeline *timelines; /* fences on rings other than 0 (venus), by ring */
   uint32_t n_timelines;
};

struct vv_ev { uint32_t kind, client; };

#include "fast_api.h"

#include "vv_limits.h"

#endif

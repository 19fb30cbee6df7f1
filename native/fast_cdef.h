/* struct vv_conn's fields the binding reads and writes (cffi checks them against
 * vv_fast.h's at build time); the rest of the interface is fast_api.h. */
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

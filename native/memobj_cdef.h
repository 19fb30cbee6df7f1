/* Frames between processes (vv_memobj.c); every call needs a GL context current.
 * vv_gl_has_extension: whether the current context lists `name` (glGetStringi).
 * vv_memobj_texture: a w x h texture (internal_format, one level) whose storage is
 *   `size` bytes of the memory in `fd` (GL_EXT_memory_object_fd, opaque fd; the call
 *   imports a duplicate, `fd` stays the caller's); 0 on failure, the memory object in
 *   *memobj. vv_memobj_delete deletes both.
 * vv_gl_copy_wait: copy level 0 of `src` (GL_TEXTURE_2D) into `dst`, then wait on the
 *   CPU until the copy is complete (glClientWaitSync, at most timeout_ns): 0 done,
 *   -1 not within the timeout. After it the other process may read `dst`.
 * vv_gl_copy_fenced: the same copy, fenced and flushed, without waiting: the GLsync.
 * vv_gl_fence: a GLsync after everything the current context queued so far (flushed).
 * vv_gl_sync_poll: whether `sync` has signalled, without waiting (any context of the
 *   share group current): 1 yes (the sync is deleted), 0 not yet, -1 failed (deleted).
 * vv_gl_upload: glTexSubImage2D of w x h pixels (format, type; rows of `stride`
 *   bytes) from `data` into level 0 of `tex`. vv_gl_finish: glFinish. */
int vv_gl_has_extension(const char *name);
uint32_t vv_memobj_texture(int fd, uint64_t size, uint32_t internal_format, int width,
                           int height, uint32_t *memobj);
void vv_memobj_delete(uint32_t tex, uint32_t memobj);
int vv_gl_copy_wait(uint32_t src, uint32_t dst, int width, int height, uint64_t timeout_ns);
void *vv_gl_copy_fenced(uint32_t src, uint32_t dst, int width, int height);
void *vv_gl_fence(void);
int vv_gl_sync_poll(void *sync);
void vv_gl_upload(uint32_t tex, int width, int height, uint32_t format, uint32_t type,
                  int stride, const void *data);
void vv_gl_finish(void);

/* Frames between processes: textures on memory both processes import.
 *
 * Why: with a renderer process per client, a guest's frames are made in the worker and
 * drawn in the main process. GL_EXT_memory_object_fd lets both import one memfd as a
 * texture's storage, so a frame crosses as a GPU-side copy in the worker, with no
 * readback into a CPU buffer. The copy is waited for (glClientWaitSync) before the
 * worker tells the main process, and GL_EXT_semaphore is not needed for that.
 * The extension's entry points come from eglGetProcAddress (they are not core).
 */
#define GL_GLEXT_PROTOTYPES 1
#include "vv_memobj.h"
#include "vv_present.h"

#include <string.h>
#include <unistd.h>
#include <GL/glcorearb.h>

/* GL_EXT_memory_object / GL_EXT_memory_object_fd (Khronos glext.h) */
#define VV_GL_HANDLE_TYPE_OPAQUE_FD_EXT 0x9586
typedef void (*vv_create_memobjs_fn)(GLsizei n, GLuint *memory_objects);
typedef void (*vv_delete_memobjs_fn)(GLsizei n, const GLuint *memory_objects);
typedef void (*vv_import_fd_fn)(GLuint memory, GLuint64 size, GLenum handle_type, GLint fd);
typedef void (*vv_tex_storage_mem_fn)(GLenum target, GLsizei levels, GLenum internal_format,
                                      GLsizei width, GLsizei height, GLuint memory,
                                      GLuint64 offset);

int vv_gl_has_extension(const char *name)
{
   GLint n = 0;
   glGetIntegerv(GL_NUM_EXTENSIONS, &n);
   for (GLint i = 0; i < n; i++) {
      const char *e = (const char *)glGetStringi(GL_EXTENSIONS, (GLuint)i);
      if (e && strcmp(e, name) == 0)
         return 1;
   }
   return 0;
}

uint32_t vv_memobj_texture(int fd, uint64_t size, uint32_t internal_format, int width,
                           int height, uint32_t *memobj)
{
   vv_create_memobjs_fn create =
      (vv_create_memobjs_fn)eglGetProcAddress("glCreateMemoryObjectsEXT");
   vv_delete_memobjs_fn destroy =
      (vv_delete_memobjs_fn)eglGetProcAddress("glDeleteMemoryObjectsEXT");
   vv_import_fd_fn import = (vv_import_fd_fn)eglGetProcAddress("glImportMemoryFdEXT");
   vv_tex_storage_mem_fn storage =
      (vv_tex_storage_mem_fn)eglGetProcAddress("glTexStorageMem2DEXT");
   *memobj = 0;
   if (!create || !destroy || !import || !storage)
      return 0;
   while (glGetError() != GL_NO_ERROR)
      ;
   int dup_fd = dup(fd);
   if (dup_fd < 0)
      return 0;
   GLuint mem = 0;
   create(1, &mem);
   import(mem, size, VV_GL_HANDLE_TYPE_OPAQUE_FD_EXT, dup_fd); /* owns dup_fd now */
   if (glGetError() != GL_NO_ERROR) {
      destroy(1, &mem);
      return 0;
   }
   GLuint tex = 0;
   GLint bound = 0;
   glGetIntegerv(GL_TEXTURE_BINDING_2D, &bound);
   glGenTextures(1, &tex);
   glBindTexture(GL_TEXTURE_2D, tex);
   storage(GL_TEXTURE_2D, 1, internal_format, width, height, mem, 0);
   GLint immutable = 0;
   glGetTexParameteriv(GL_TEXTURE_2D, GL_TEXTURE_IMMUTABLE_FORMAT, &immutable);
   glBindTexture(GL_TEXTURE_2D, (GLuint)bound);
   if (glGetError() != GL_NO_ERROR || !immutable) {
      glDeleteTextures(1, &tex);
      destroy(1, &mem);
      return 0;
   }
   *memobj = mem;
   return tex;
}

void vv_memobj_delete(uint32_t tex, uint32_t memobj)
{
   vv_delete_memobjs_fn destroy =
      (vv_delete_memobjs_fn)eglGetProcAddress("glDeleteMemoryObjectsEXT");
   GLuint t = tex, m = memobj;
   if (t)
      glDeleteTextures(1, &t);
   if (m && destroy)
      destroy(1, &m);
}

int vv_gl_copy_wait(uint32_t src, uint32_t dst, int width, int height, uint64_t timeout_ns)
{
   GLsync sync = (GLsync)vv_gl_copy_and_fence(src, GL_TEXTURE_2D, dst, width, height);
   if (!sync)
      return -1;
   GLenum r = glClientWaitSync(sync, GL_SYNC_FLUSH_COMMANDS_BIT, timeout_ns);
   glDeleteSync(sync);
   return r == GL_ALREADY_SIGNALED || r == GL_CONDITION_SATISFIED ? 0 : -1;
}

void *vv_gl_copy_fenced(uint32_t src, uint32_t dst, int width, int height)
{
   return vv_gl_copy_and_fence(src, GL_TEXTURE_2D, dst, width, height);
}

void *vv_gl_fence(void)
{
   GLsync sync = glFenceSync(GL_SYNC_GPU_COMMANDS_COMPLETE, 0);
   glFlush();
   return (void *)sync;
}

int vv_gl_sync_poll(void *sync)
{
   if (!sync)
      return -1;
   GLenum r = glClientWaitSync((GLsync)sync, 0, 0);
   if (r == GL_TIMEOUT_EXPIRED)
      return 0;
   glDeleteSync((GLsync)sync);
   return r == GL_ALREADY_SIGNALED || r == GL_CONDITION_SATISFIED ? 1 : -1;
}

void vv_gl_upload(uint32_t tex, int width, int height, uint32_t format, uint32_t type,
                  int stride, const void *data)
{
   GLint bound = 0, align = 4, row = 0;
   glGetIntegerv(GL_TEXTURE_BINDING_2D, &bound);
   glGetIntegerv(GL_UNPACK_ALIGNMENT, &align);
   glGetIntegerv(GL_UNPACK_ROW_LENGTH, &row);
   glBindTexture(GL_TEXTURE_2D, tex);
   glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
   glPixelStorei(GL_UNPACK_ROW_LENGTH, stride / 4);
   glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, width, height, format, type, data);
   glPixelStorei(GL_UNPACK_ROW_LENGTH, row);
   glPixelStorei(GL_UNPACK_ALIGNMENT, align);
   glBindTexture(GL_TEXTURE_2D, (GLuint)bound);
}

void vv_gl_finish(void)
{
   glFinish();
}

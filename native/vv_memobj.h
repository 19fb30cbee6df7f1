/* Frames between processes (vv_memobj.c): textures whose storage is a memfd both
 * processes import (GL_EXT_memory_object_fd), GPU-side copies into them that the CPU
 * waits for before telling the other process, and a CPU upload for the fallback. */
#ifndef VV_MEMOBJ_H
#define VV_MEMOBJ_H

#include <stdint.h>
#include <EGL/egl.h>

#include "memobj_cdef.h"

#endif

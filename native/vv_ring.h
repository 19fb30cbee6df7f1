/* A scanout's ring of frames, shared by the render thread and the UI (vv_ring.c).
 * The declarations are in ring_cdef.h, read by C and by the binding's cffi. */
#ifndef VV_RING_H
#define VV_RING_H
#include <stdint.h>
#include <EGL/egl.h>

#include "ring_cdef.h"

#define VV_RING_UI_FENCES 8
#define VV_RING_TIMES 1024
#endif

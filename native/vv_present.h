/* GL helpers for handing guest scanouts to the UI (vv_present.c).
 * The declarations are in present_cdef.h, read by C and by the binding's cffi. */
#ifndef VV_PRESENT_H
#define VV_PRESENT_H
#include <stdint.h>
#include <EGL/egl.h>

#include "present_cdef.h"
#endif

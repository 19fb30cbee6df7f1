/* CHECK(cond): abort with the file, line and condition when cond is false; the fuzz
 * targets' and the native stress driver's one assertion (an abort is what libFuzzer and
 * the sanitizer tests report). */
#ifndef VV_TEST_CHECK_H
#define VV_TEST_CHECK_H
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                             \
   do {                                                                         \
      if (!(cond)) {                                                            \
         fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
         abort();                                                               \
      }                                                                         \
   } while (0)
#endif

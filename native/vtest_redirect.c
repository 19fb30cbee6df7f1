/* LD_PRELOAD shim for tests and benchmarks: Mesa 22.3.6's vtest winsys always
 * connects to /tmp/.virgl_test. When $VTEST_SOCKET_NAME is set, a connect() to
 * that one AF_UNIX path goes to $VTEST_SOCKET_NAME instead; every other
 * connect() is untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define VTEST_DEFAULT_PATH "/tmp/.virgl_test"

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
   static int (*real_connect)(int, const struct sockaddr *, socklen_t);
   const char *target = getenv("VTEST_SOCKET_NAME");
   if (!real_connect)
      real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
   if (target && *target && addr && addr->sa_family == AF_UNIX &&
       len > (socklen_t)offsetof(struct sockaddr_un, sun_path)) {
      const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
      if (strncmp(un->sun_path, VTEST_DEFAULT_PATH, sizeof(un->sun_path)) == 0 &&
          strlen(target) < sizeof(un->sun_path)) {
         struct sockaddr_un redirected;
         memset(&redirected, 0, sizeof(redirected));
         redirected.sun_family = AF_UNIX;
         strcpy(redirected.sun_path, target);
         return real_connect(fd, (const struct sockaddr *)&redirected, sizeof(redirected));
      }
   }
   return real_connect(fd, addr, len);
}

/*
 * fake_virgl.h - the fuzz harness' stand-in for libvirglrenderer.
 *
 * Why: fuzz_engine.c fuzzes native/vv_fast.c (parsing, checks, bookkeeping),
 * not virglrenderer: a real renderer would make every input slow and
 * nondeterministic. This is NOT virglrenderer. It keeps a model of what the
 * engine asked for (resources, their iovs and owning contexts, contexts,
 * fences) and aborts, so libFuzzer reports a crash, when the engine asks for
 * something the real library would turn into memory corruption or a leak:
 * a resource id created twice, an unref with the iov still attached (issue 13
 * class 2), a transfer into another client's resource or past its iov, a
 * context destroyed with fences in flight (the vrend-sync race), anything
 * left over when every client has gone. The real library is fuzzed through a
 * real server by fuzz_server.py.
 *
 * Failures are injected on demand (fake_faults), fences retire only when the
 * harness says (fake_retire), and a context destroy loses the fence the real
 * fence thread would be waiting on, as vrend_renderer.c does.
 */
#ifndef FAKE_VIRGL_H
#define FAKE_VIRGL_H
#include <stdint.h>

#define FAKE_FAIL_SUBMIT (1u << 0)
#define FAKE_FAIL_FENCE (1u << 1)
#define FAKE_FAIL_CREATE (1u << 2)
#define FAKE_FAIL_ATTACH_IOV (1u << 3)
#define FAKE_FAIL_TRANSFER (1u << 4)

/* Calls of the kinds in `mask` fail from the `after`-th such call on (0: all). */
void fake_faults(uint32_t mask, uint32_t after);
/* The next virgl_renderer_poll retires up to n pending fences (oldest first). */
void fake_retire(uint32_t n);
uint32_t fake_pending_fences(void);
/* Aborts unless nothing is left: no resources, contexts or fences. */
void fake_check_clean(void);
/* A ring pointer the fake's vv_ring_present accepts; its result. */
extern char fake_ring;
extern int fake_ring_result;

#endif

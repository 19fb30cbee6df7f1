"""Venus (Vulkan) contexts of a session: their command stream, queues and fences.

Why: a client that sends CONTEXT_INIT with the venus capset gets a context that
virglrenderer runs in its render server (``--venus``: VENUS | RENDER_SERVER), not
vrend. Three things differ from a GL context:
- its command stream is venus's, not virgl's: there are no virgl handles to rewrite.
  Resource ids in it are looked up by the render server among the resources attached
  to this context only (every protocol-3 id is ours, attached to its owner alone), so
  one client cannot reach another's resources by naming their ids;
- every VkQueue is a ring (``ring_idx`` of SUBMIT_CMD2): a batch's syncs are signalled
  when the fence on its ring retires, and rings retire independently of each other,
  in order on each (vv_conn_ring_fence, per-ring fence ids);
- its fences retire on the context's own poll fd (the proxy context's eventfd), not on
  virglrenderer's global one: the render loop watches it and polls that context.
Ring 0 keeps the session's ordinary fences (FastConn.fence), which the GL path uses too.
A batch gets a fence only when syncs wait for it, as upstream's vtest_renderer.c does:
Mesa's venus sends most of its work through its own ring in shared memory, and its
SUBMIT_CMD2 batches only wake that ring up.
"""

from __future__ import annotations

from collections import deque

from virgl_viewer.objects import Sync
from virgl_viewer.session_parts import SessionCore
from virgl_viewer.vtest import protocol as P


class VenusCommands:
    """Mixed into Session; its state: ``venus_rings`` (per ring > 0, the fences in
    flight and the syncs each signals), ``venus_timelines`` (per ring > 0, fences given
    and retired: a dict replaced whole, so other threads read it safely) and
    ``_venus_poll_fd``."""

    def _venus_started(self: SessionCore) -> None:
        """The venus context exists: watch its fences."""
        fd = self.host.renderer.context_poll_fd(self.ctx_id)
        if fd >= 0:
            self._venus_poll_fd = fd
            self.loop.add_reader(fd, self._venus_poll)

    def _venus_poll(self: SessionCore) -> None:
        if self.closed:
            return
        self.host.renderer.poll_context(self.ctx_id)
        self.server.fences_polled()

    def _venus_submit(self: SessionCore, batch: P.SubmitBatch, payload: bytearray,
                      signals: list[tuple[Sync, int]]) -> None:
        """Run one SUBMIT_CMD2 batch of a venus context."""
        if batch.cmd_size:
            start = 4 * batch.cmd_offset
            view = memoryview(payload)[start: start + 4 * batch.cmd_size]
            self.host.renderer.submit_cmd(self.ctx_id, view, batch.cmd_size)
            self.fast.bytes_submitted += 4 * batch.cmd_size
        self.fast.submits += 1
        if not signals:
            return  # nothing waits for it: no fence (as upstream)
        if not batch.flags & P.SUBMIT_CMD2_FLAG_RING_IDX:
            # No queue named: upstream signals such syncs at submit time too.
            for sync, value in signals:
                self._signal_sync(sync, value)
            return
        ring = batch.ring_idx
        if ring == 0:  # the CPU ring: the session's own fences
            self._new_fence(signals)
            state = (self.fence_submitted, self.fence_completed)
        else:
            fid = self.fast.ring_fence(ring)
            self.venus_rings.setdefault(ring, deque()).append((fid, signals))
            self.fast.want_fence_cb = 1
            state = self.fast.timeline(ring)
        self.venus_timelines = {**self.venus_timelines, ring: state}

    def _venus_fences(self: SessionCore) -> bool:
        """Signal the syncs of retired fences on rings > 0; True while any are pending."""
        pending = False
        timelines = dict(self.venus_timelines)
        if 0 in timelines:
            timelines[0] = (self.fence_submitted, self.fence_completed)
        for ring, queue in self.venus_rings.items():
            timelines[ring] = self.fast.timeline(ring)
            done = timelines[ring][1]
            while queue and queue[0][0] <= done:
                _, signals = queue.popleft()
                for sync, value in signals:
                    self._signal_sync(sync, value)
            pending = pending or bool(queue)
        self.venus_timelines = timelines
        return pending

    def _venus_stop(self: SessionCore) -> None:
        """Before the context goes: stop watching its poll fd (the library owns it)."""
        if self._venus_poll_fd >= 0:
            self.loop.remove_reader(self._venus_poll_fd)
            self._venus_poll_fd = -1
        self.venus_rings.clear()

    def timelines(self: SessionCore) -> dict[int, tuple[int, int]]:
        """The timelines (rings) this venus session fenced on: ring -> (fences given,
        fences retired); ring 0, the CPU ring, is the session's own fence counter. Any
        thread."""
        return self.venus_timelines

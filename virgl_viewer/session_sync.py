"""Submits, fences, BUSY_WAIT and protocol-3 sync objects of a session.

Every submit gets a context fence (virgl ring 0: vrend has one ring; the
vtest timelines of SUBMIT_CMD2 are bookkeeping here). Fences are counted and
logged in C (FastConn); virglrenderer's sync thread signals its poll fd and
the server's C poll retires them, calling ``on_fence`` only for sessions
with timelines. A BUSY_WAIT(WAIT) with fences in flight parks the session (it
stops handling input) until they retire; other clients go on. The common
path of SUBMIT_CMD and BUSY_WAIT runs in C (vv_fast.c); these handlers serve
input the C path gave back. SYNC_WAIT answers at once with an eventfd that
is written when the syncs reach their values.
"""

from __future__ import annotations

import os

from virgl_viewer.errors import ClientError
from virgl_viewer.objects import Sync, SyncWaiter
from virgl_viewer.session_parts import SessionCore
from virgl_viewer.vtest import protocol as P

_ONE = (1).to_bytes(8, "little")


class SyncCommands:
    # ------------------------------------------------------------ submits
    def _rewrite(self: SessionCore, cmd: str, buf: bytearray, start_dw: int, ndw: int) -> None:
        view = memoryview(buf)[4 * start_dw: 4 * (start_dw + ndw)] if start_dw or \
            4 * ndw != len(buf) else buf
        why = self.map.rewrite(view, ndw, start_dw)
        if why is not None:
            raise ClientError(why, cmd)

    def _new_fence(self: SessionCore, syncs: list[tuple[Sync, int]] | None = None,
                   switch: bool = False) -> None:
        fid = self.fast.fence(switch)
        if syncs:
            self._timeline.append((fid, syncs))
            self.fast.want_fence_cb = 1

    def _on_submit_cmd(self: SessionCore, ev: P.SubmitCmd) -> None:
        cmd = self._command = "SUBMIT_CMD"
        buf = ev.commands
        ndw = len(buf) >> 2
        ctx_id = self._ensure_context()
        if ndw:
            self._rewrite(cmd, buf, 0, ndw)
            self.host.renderer.submit_cmd(ctx_id, buf, ndw)
        c = self.fast
        c.submits += 1
        c.bytes_submitted += len(buf)
        # One fence per submit, made right after it (its GL context is
        # current): measured faster than fencing lazily at the next wait,
        # as the flush starts the GPU early.
        self._new_fence()

    def _on_submit_cmd2(self: SessionCore, ev: P.SubmitCmd2) -> None:
        cmd = self._command = "SUBMIT_CMD2"
        ctx_id = self._ensure_context()
        payload = ev.payload
        venus = self.capset_id == P.CAPSET_VENUS
        for batch in ev.batches:
            signals: list[tuple[Sync, int]] = []
            for sync_id, value in batch.syncs:
                sync = self.syncs.get(sync_id)
                if sync is None:
                    raise ClientError(f"sync {sync_id} does not belong to this client", cmd)
                signals.append((sync, value))
            if venus:
                self._venus_submit(batch, payload, signals)
                continue
            if batch.cmd_size:
                self._rewrite(cmd, payload, batch.cmd_offset, batch.cmd_size)
                start = 4 * batch.cmd_offset
                view = memoryview(payload)[start: start + 4 * batch.cmd_size]
                self.host.renderer.submit_cmd(ctx_id, view, batch.cmd_size)
                self.fast.bytes_submitted += 4 * batch.cmd_size
            self.fast.submits += 1
            if batch.flags & P.SUBMIT_CMD2_FLAG_RING_IDX:
                self._new_fence(signals)
            else:
                self._new_fence()
                for sync, value in signals:
                    self._signal_sync(sync, value)

    def on_fence(self: SessionCore) -> None:
        """Fences retired (the C poll answered a parked BUSY_WAIT itself):
        signal the timeline syncs they carry."""
        if self.closed:
            return
        fence_id = self.fence_completed
        timeline = self._timeline
        while timeline and timeline[0][0] <= fence_id:
            _, signals = timeline.popleft()
            for sync, value in signals:
                self._signal_sync(sync, value)
        rings_pending = bool(self.venus_timelines) and self._venus_fences()
        if not timeline and not rings_pending:
            self.fast.want_fence_cb = 0

    def _on_busy_wait(self: SessionCore, ev: P.ResourceBusyWait) -> None:
        cmd = self._command = "RESOURCE_BUSY_WAIT"
        if not self.ctx_id and ev.handle:
            raise ClientError(f"resource {ev.handle} before any context exists", cmd)
        busy = self.fence_completed < self.fence_submitted
        if busy and ev.flags & P.BUSY_WAIT_FLAG_WAIT:
            # Park: handle nothing more from this client until its fences
            # retire (the C poll answers and resumes it).
            self.fast.parked = 1
            return
        self._send(self.conn.send(P.BusyWaitReply(1 if busy else 0)))

    # ------------------------------------------------------------ syncs
    def _sync(self: SessionCore, cmd: str, sync_id: int) -> Sync:
        sync = self.syncs.get(sync_id)
        if sync is None:
            raise ClientError(f"sync {sync_id} does not belong to this client", cmd)
        return sync

    def _on_sync_create(self: SessionCore, ev: P.SyncCreate) -> None:
        cmd = self._command = "SYNC_CREATE"
        if len(self.syncs) >= self.budgets.syncs:
            raise ClientError(f"over the budget of {self.budgets.syncs} syncs a client", cmd)
        sync_id = self._next_sync
        self._next_sync += 1
        self.syncs[sync_id] = Sync(sync_id, ev.value)
        self._send(self.conn.send(P.SyncCreateReply(sync_id)))
        self.server.sync_changed(self)

    def _on_sync_unref(self: SessionCore, ev: P.SyncUnref) -> None:
        self._command = "SYNC_UNREF"
        self._sync("SYNC_UNREF", ev.sync_id)
        del self.syncs[ev.sync_id]
        self.server.sync_changed(self)

    def _on_sync_read(self: SessionCore, ev: P.SyncRead) -> None:
        self._command = "SYNC_READ"
        sync = self._sync("SYNC_READ", ev.sync_id)
        self._send(self.conn.send(P.SyncReadReply(sync.value)))

    def _on_sync_write(self: SessionCore, ev: P.SyncWrite) -> None:
        self._command = "SYNC_WRITE"
        self._signal_sync(self._sync("SYNC_WRITE", ev.sync_id), ev.value)

    def _signal_sync(self: SessionCore, sync: Sync, value: int) -> None:
        """Set a sync's value and end the waits it meets: only the waiters on this
        sync are looked at, each in constant time."""
        if value <= sync.value:
            sync.value = value  # timelines may be reset downwards, as upstream
            return
        sync.value = value
        waiters = self._waiting.get(sync.sync_id)
        if not waiters:
            return
        met = [w for w in waiters if w.need[sync.sync_id] <= value]
        for w in met:
            del w.need[sync.sync_id]
            waiters.discard(w)
            if w.any or not w.need:
                self.sync_waiters.remove(w)
                self._end_waiter(w, signal=True)
        if not waiters:
            self._waiting.pop(sync.sync_id, None)

    def _end_waiter(self: SessionCore, w: SyncWaiter, signal: bool) -> None:
        for sid in w.need:
            waiters = self._waiting.get(sid)
            if waiters is not None:
                waiters.discard(w)
                if not waiters:
                    del self._waiting[sid]
        w.need.clear()
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None
        if signal:
            os.write(w.fd, _ONE)
        os.close(w.fd)

    def _expire_waiter(self: SessionCore, w: SyncWaiter) -> None:
        w.timer = None
        if w in self.sync_waiters:
            self.sync_waiters.remove(w)
            self._end_waiter(w, signal=False)

    def _on_sync_wait(self: SessionCore, ev: P.SyncWait) -> None:
        cmd = self._command = "SYNC_WAIT"
        any_ = bool(ev.flags & P.SYNC_WAIT_FLAG_ANY)
        need: dict[int, int] = {}
        met_one = False
        for sync_id, value in ev.waits:
            sync = self._sync(cmd, sync_id)
            if sync.value >= value:
                met_one = True
            elif sync_id not in need:
                need[sync_id] = value
            else:
                need[sync_id] = min(need[sync_id], value) if any_ else max(need[sync_id],
                                                                            value)
        ready = not need or (any_ and met_one)
        if not ready and ev.timeout != 0:
            budgets = self.budgets
            if len(self.sync_waiters) >= budgets.sync_waits:
                raise ClientError(f"more than {budgets.sync_waits} sync waits pending", cmd)
            entries = sum(len(w.need) for w in self.sync_waiters) + len(need)
            if entries > budgets.sync_wait_entries:
                raise ClientError(f"pending sync waits would wait on {entries} syncs, more "
                                  f"than {budgets.sync_wait_entries}", cmd)
        efd = os.eventfd(1 if ready else 0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._send(self.conn.send(P.SyncWaitReply()))
        if ready or ev.timeout == 0:
            self._send_fd(efd)
            return
        keep = os.dup(efd)
        self._send_fd(efd)
        w = SyncWaiter(keep, any_, need)
        if ev.timeout <= 0x7FFFFFFF:
            w.timer = self.loop.call_later(ev.timeout / 1000.0, self._expire_waiter, w)
        self.sync_waiters.append(w)
        for sid in need:
            self._waiting.setdefault(sid, set()).add(w)

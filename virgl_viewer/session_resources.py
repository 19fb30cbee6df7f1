"""Resource commands of a session: create (v0-v2, blob), unref, transfers.

Checks run before virglrenderer sees anything: handles the client owns,
boxes inside the resource's level, offsets and sizes inside the shm (a
transfer's target is checked by the C engine's one check,
vv_conn_check_transfer, which its own transfers run too). The shm of a
protocol-2 resource is a memfd the client maps; transfers copy between it
and the GPU resource.
"""

from __future__ import annotations

from virgl_viewer import virgl
from virgl_viewer.errors import ClientError, RendererError
from virgl_viewer.formats import estimate_resource_bytes, format_info
from virgl_viewer.objects import Resource
from virgl_viewer.session_parts import SessionCore
from virgl_viewer.virgl import BLOB_FD_TYPE_DMABUF, BLOB_FD_TYPE_SHM, SharedMemory
from virgl_viewer.vtest import protocol as P


def shm_bound(ev: P.ResourceCreate | P.ResourceCreate2 | Resource) -> int:
    """Largest backing a resource of this shape can need (the C path's rule)."""
    return virgl.shm_bound(ev.width, ev.height, ev.depth, ev.array_size, ev.nr_samples,
                           ev.last_level)


def storage_estimate(res: P.ResourceCreate | P.ResourceCreate2 | Resource) -> int:
    """Bytes the renderer stores for a resource (the resource-bytes budgets): exact for
    known formats, 16 bytes a texel for others."""
    try:
        return estimate_resource_bytes(res.target, res.format, res.width, res.height,
                                       res.depth, res.array_size, res.last_level,
                                       res.nr_samples)
    except ValueError:
        return virgl.texture_upper_bound(res.width, res.height, res.depth, res.array_size,
                                         res.nr_samples, res.last_level)


Box = tuple[int, int, int, int, int, int]  # x, y, z, width, height, depth


def _blocks(texels: int, block: int) -> int:
    return -(-max(1, texels) // block)


def transfer_span(cmd: str, res: Resource, level: int, stride: int, layer_stride: int,
                  box: tuple[int, int, int, int, int, int]) -> int:
    """Bytes of its buffer a protocol-0 transfer of ``box`` touches with these strides.

    virglrenderer checks this itself (check_iov_bounds in vrend_renderer.c, 0.10.4 and
    1.1 alike) but keeps vrend_transfer_size()'s 64-bit result, and the minimum layer
    stride, in 32-bit GLuints: a stride of 2^31 over three rows wraps to a few hundred
    bytes, passes, and the copy runs gigabytes past the buffer. Here the same sums in
    Python integers, with the same rules: a given stride must be at least the box's
    row, a given layer stride at least its rows; 0 means the level's own."""
    info = format_info(res.format)
    bs, bw, bh = (info.bytes_per_block, info.block_width, info.block_height) if info else (
        16, 1, 1)
    _x, _y, _z, w, h, d = box
    row = _blocks(w, bw) * bs
    if stride and stride < row:
        raise ClientError(f"stride {stride} is less than the box's row of {row} bytes", cmd)
    valid_stride = stride or _blocks(res.width >> level, bw) * bs
    rows = _blocks(h, bh) * valid_stride
    if layer_stride and layer_stride < rows:
        raise ClientError(f"layer_stride {layer_stride} is less than the box's "
                          f"{rows} bytes of rows", cmd)
    valid_layer = layer_stride or _blocks(res.height >> level, bh) * valid_stride
    return (max(1, d) - 1) * valid_layer + (_blocks(h, bh) - 1) * valid_stride + row


def check_inline_span(cmd: str, res: Resource, ev: P.TransferGet | P.TransferPut,
                      box: tuple[int, int, int, int, int, int]) -> None:
    """The box with the client's strides must fit the data_size bytes that travel."""
    if not ev.data_size:
        return
    span = transfer_span(cmd, res, ev.level, ev.stride, ev.layer_stride, box)
    if span > ev.data_size:
        raise ClientError(
            f"box {ev.width}x{ev.height}x{ev.depth} with stride {ev.stride} and "
            f"layer_stride {ev.layer_stride} spans {span} bytes, data_size is "
            f"{ev.data_size}", cmd)


class ResourceCommands:
    def _resource(self: SessionCore, command: str, handle: int) -> Resource:
        """The client's resource ``handle``: the C engine's table decides (its one
        ownership check); ``resources`` is that table's mirror."""
        try:
            self.fast.check_owned(int(P.Cmd[command]), handle)
        except ClientError as exc:
            raise ClientError(exc.reason, command) from None
        res = self.resources.get(handle)
        if res is None:  # made by the C path since the mirror was last synced
            self.sync_resources()
            res = self.resources[handle]
        return res

    def _on_resource_create(self: SessionCore, ev: P.ResourceCreate | P.ResourceCreate2) -> None:
        v2 = isinstance(ev, P.ResourceCreate2)
        cmd = self._command = "RESOURCE_CREATE2" if v2 else "RESOURCE_CREATE"
        v3 = self.protocol_version >= 3
        data_size = ev.data_size if isinstance(ev, P.ResourceCreate2) else 0
        try:
            self.fast.check_create(int(P.Cmd[cmd]), ev.handle,
                                   (ev.target, ev.format, ev.bind, ev.width, ev.height,
                                    ev.depth, ev.array_size, ev.last_level, ev.nr_samples),
                                   data_size)
        except ClientError as exc:
            raise ClientError(exc.reason, cmd) from None
        over = self.fast.admit(data_size, storage_estimate(ev))
        if over is not None:
            raise ClientError(over, cmd)
        ctx_id = self._ensure_context()
        host = self.host
        host.renderer.switch_to(ctx_id)
        server_handle = host.new_resource_id()
        client_handle = server_handle if v3 else ev.handle
        try:
            host.renderer.resource_create(server_handle, ev.target, ev.format, ev.bind,
                                          ev.width, ev.height, ev.depth, ev.array_size,
                                          ev.last_level, ev.nr_samples)
        except RendererError:
            host.release_resource_id(server_handle)
            raise
        res = Resource(client_handle, server_handle, ev.target, ev.format, ev.bind, ev.width,
                       ev.height, ev.depth, ev.array_size, ev.last_level, ev.nr_samples)
        self.resources[client_handle] = res
        self.map.set(client_handle, server_handle)
        host.renderer.ctx_attach_resource(ctx_id, server_handle)
        if v3:
            self._send(self.conn.send(P.ResourceIdReply(int(P.Cmd.RESOURCE_CREATE2 if v2 else
                                                            P.Cmd.RESOURCE_CREATE),
                                                        server_handle)))
        if data_size:
            shm = SharedMemory(data_size, f"vtest-res-{client_handle}")
            res.shm = shm
            host.renderer.attach_iov(server_handle, shm.iov)
            fd, shm.fd = shm.fd, -1
            self._send_fd(fd)
        self._mirror(res)
        self.server.resource_created(self, res)

    def _on_create_blob(self: SessionCore, ev: P.ResourceCreateBlob) -> None:
        cmd = self._command = "RESOURCE_CREATE_BLOB"
        if self.protocol_version < 3:
            raise ClientError("blobs need protocol 3", cmd)
        if ev.blob_type not in (P.BLOB_TYPE_GUEST, P.BLOB_TYPE_HOST3D, P.BLOB_TYPE_HOST3D_GUEST):
            raise ClientError(f"unknown blob type {ev.blob_type}", cmd)
        if ev.size == 0 or ev.size > self.server.budgets.shm_bytes_per_resource:
            raise ClientError(f"blob size {ev.size} out of range", cmd)
        over = self.fast.admit(0 if ev.blob_type == P.BLOB_TYPE_HOST3D else ev.size, ev.size)
        if over is not None:
            raise ClientError(over, cmd)
        ctx_id = self._ensure_context()
        host = self.host
        host.renderer.switch_to(ctx_id)
        handle = host.new_resource_id()
        shm: SharedMemory | None = None
        fd = -1
        try:
            if ev.blob_type != P.BLOB_TYPE_HOST3D:
                shm = SharedMemory(ev.size, f"vtest-blob-{handle}")
            host.renderer.resource_create_blob(handle, ctx_id, ev.blob_type, ev.flags,
                                               ev.blob_id, ev.size,
                                               shm.iov if shm is not None else None)
            if shm is not None:
                fd, shm.fd = shm.fd, -1
            else:
                try:
                    fd_type, fd = host.renderer.resource_export_blob(handle)
                except RendererError:
                    host.renderer.resource_unref(handle)
                    raise ClientError("host3d blob cannot be exported by this host", cmd) \
                        from None
                if fd_type not in (BLOB_FD_TYPE_DMABUF, BLOB_FD_TYPE_SHM):
                    import os
                    os.close(fd)
                    host.renderer.resource_unref(handle)
                    raise ClientError(f"host3d blob exported as fd type {fd_type}", cmd)
        except BaseException:
            host.release_resource_id(handle)
            if shm is not None:
                shm.release()
            raise
        res = Resource(handle, handle, P.TARGET_BUFFER, 0, 0, ev.size, 1, 1, 1, 0, 0,
                       shm=shm, blob=True)
        self.resources[handle] = res
        self.map.set(handle, handle)
        host.renderer.ctx_attach_resource(ctx_id, handle)
        self._send(self.conn.send(P.ResourceIdReply(int(P.Cmd.RESOURCE_CREATE_BLOB), handle)))
        self._send_fd(fd)
        self._mirror(res)
        self.server.resource_created(self, res)

    def _mirror(self: SessionCore, res: Resource) -> None:
        """Tell the C path about a resource (its transfers run there)."""
        self.fast.add_resource(res.client_handle, res.server_handle, res.target, res.bind,
                               res.width, res.height, res.depth, res.array_size,
                               res.last_level, res.shm.size if res.shm is not None else 0,
                               storage_estimate(res))

    def _on_resource_unref(self: SessionCore, ev: P.ResourceUnref) -> None:
        self._command = "RESOURCE_UNREF"
        res = self._resource("RESOURCE_UNREF", ev.handle)
        del self.resources[ev.handle]
        self.server.resource_destroyed(self, res)  # a scanout copies its last frame
        if res.native:
            self.fast.destroy_resource(ev.handle)
            return
        self.map.remove(ev.handle)
        self.fast.remove_resource(ev.handle)
        self.host.renderer.switch_to(self.ctx_id)
        self._destroy_resource(res)

    def _transfer_target(self: SessionCore, cmd: str,
                         ev: P.TransferGet | P.TransferPut | P.TransferGet2 | P.TransferPut2,
                         shm_offset: int) -> tuple[Resource, int, Box]:
        """The resource, its server handle and the box, checked by the C engine's one
        transfer check (vv_conn_check_transfer: the C path runs the same)."""
        box = (ev.x, ev.y, ev.z, ev.width, ev.height, ev.depth)
        try:
            server = self.fast.check_transfer(int(P.Cmd[cmd]), ev.handle, ev.level, box,
                                              shm_offset)
        except ClientError as exc:
            raise ClientError(exc.reason, cmd) from None
        return self._resource(cmd, ev.handle), server, box

    def _presented(self: SessionCore, res: Resource) -> None:
        """A present on the Python path: reported under the C path's rate limit."""
        if self.fast.notify_present:
            n = self.fast.note_present(res.client_handle)
            if n:
                self.server.presented(self, res, n)

    def _on_transfer_get2(self: SessionCore, ev: P.TransferGet2) -> None:
        cmd = self._command = "TRANSFER_GET2"
        res, server, box = self._transfer_target(cmd, ev, ev.offset)
        self.host.renderer.transfer_read(server, self.ctx_id, ev.level, 0, 0, box,
                                         ev.offset)
        if res.bind & (P.BIND_DISPLAY_TARGET | P.BIND_SCANOUT):
            self._presented(res)

    def _on_transfer_put2(self: SessionCore, ev: P.TransferPut2) -> None:
        cmd = self._command = "TRANSFER_PUT2"
        _res, server, box = self._transfer_target(cmd, ev, ev.offset)
        self.host.renderer.transfer_write(server, self.ctx_id, ev.level, 0, 0, box,
                                          ev.offset)

    def _on_transfer_get(self: SessionCore, ev: P.TransferGet) -> None:
        cmd = self._command = "TRANSFER_GET"
        res, server, box = self._transfer_target(cmd, ev, -1)
        if ev.data_size > shm_bound(res):  # the reply is allocated: never gigabytes
            raise ClientError(f"data_size {ev.data_size} is larger than resource "
                              f"{res.client_handle} can hold", cmd)
        check_inline_span(cmd, res, ev, box)
        data = bytearray(ev.data_size)
        if ev.data_size:
            self.host.renderer.transfer_read(server, self.ctx_id, ev.level,
                                             ev.stride, ev.layer_stride, box, 0, data)
        self._send(bytes(data))
        if res.bind & (P.BIND_DISPLAY_TARGET | P.BIND_SCANOUT):
            self._presented(res)

    def _on_transfer_put(self: SessionCore, ev: P.TransferPut) -> None:
        cmd = self._command = "TRANSFER_PUT"
        res, server, box = self._transfer_target(cmd, ev, -1)
        check_inline_span(cmd, res, ev, box)
        if ev.data_size:
            self.host.renderer.transfer_write(server, self.ctx_id, ev.level,
                                              ev.stride, ev.layer_stride, box, 0, ev.data)

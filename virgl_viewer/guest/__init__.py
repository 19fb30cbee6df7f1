"""Our own vtest client library: talk to a vtest server without Mesa.

``VtestClient.connect(path, name, protocol_version)`` does Mesa's handshake;
its methods map one-to-one onto vtest commands (protocol 0-3).
"""

from virgl_viewer.guest.client import VtestClient
from virgl_viewer.guest.resources import GuestResource, SyncWaitFd
from virgl_viewer.vtest.client_codec import BatchSpec

__all__ = ["BatchSpec", "GuestResource", "SyncWaitFd", "VtestClient"]

"""Sans-IO vtest protocol codec (protocol versions 0-3).

Like h11: bytes in, events out; events in, bytes out. It never imports
asyncio, socket, Qt or cffi and never logs.
"""

from virgl_viewer.vtest.protocol import *  # noqa: F403

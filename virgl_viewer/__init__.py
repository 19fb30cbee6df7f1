"""virgl-viewer: a compositor-viewer for virgl guests.

Core modules (vtest codec, server, session, renderer, binding, state) never
import Qt; the UI (virgl_viewer.ui) never imports the binding.
"""

__version__ = "0.1.0"

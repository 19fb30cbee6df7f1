"""virgl-viewer: a compositor-viewer for virgl guests.

Core modules (vtest codec, server, session, renderer, binding, state) never
import Qt; the UI (virgl_viewer.ui) never imports the binding.
"""

from importlib.metadata import PackageNotFoundError, version

try:  # pyproject.toml holds the version; this reads the installed metadata
    __version__ = version("virgl-viewer")
except PackageNotFoundError:  # a bare checkout on sys.path, never installed
    __version__ = "0+unknown"

"""virgl-viewer's run-time resources (icon, desktop entry, AppStream metainfo).

This directory is the package ``virgl_viewer.resources`` (``virgl_viewer/resources`` is a
symlink to it), so the files reach wheels and .debs as package data and are found with
``importlib.resources``; ``virgl_viewer.desktop`` is the one module that reads them.
"""

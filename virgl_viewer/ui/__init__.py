"""The Qt 6 user interface. Runs on the GUI thread; reads scanouts and state
handed over by the render thread, never calls virglrenderer."""

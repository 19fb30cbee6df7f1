# cffi shim: pyproject.toml holds the metadata; this only wires the out-of-line
# API-mode extension built by native/build_native.py against the system
# libvirglrenderer.
from setuptools import setup

setup(cffi_modules=["native/build_native.py:ffibuilder"])

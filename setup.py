"""Builds the C extension; all metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "renderer._binning",
            # binning.c is the module; binning.h says which file holds what.
            sources=["ext/binning.c", "ext/binning_scan.c", "ext/binning_emit.c"],
            depends=["ext/binning.h"],
            # Hidden visibility: the functions shared between the files stay private to the
            # .so (only PyInit__binning is exported, as when it was one file of statics).
            extra_compile_args=[
                "-O3",
                "-std=c11",
                "-Wall",
                "-Wextra",
                "-Wno-unused-parameter",
                "-fvisibility=hidden",
            ],
        ),
        Extension(
            "renderer._utfgrid",
            # UTFGrid painting for the map tiles; twin: renderer/_utfgrid_py.py.
            sources=["ext/utfgrid.c"],
            # No FMA contraction: the twin computes the same crossings bit for bit.
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-ffp-contract=off",
                                "-fvisibility=hidden"],
        ),
    ]
)

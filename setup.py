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
            "renderer._speedtile",
            sources=["ext/speedtile.c"],
            # No fused multiply-add: the floats must equal the Python twin's, operation for
            # operation.
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-fvisibility=hidden", "-ffp-contract=off"],
        ),
    ]
)

"""Builds the C extension and copies the SQL and the migrations into the package; all
metadata lives in pyproject.toml."""

from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

# -- package data: sql/ and migrations/ ------------------------------------------------------
# Both stay at the top of the checkout (an editable install and the tests read them there);
# a built package gets a copy under renderer/_data/, which renderer/resources.py prefers.
DATA_FOLDERS = ("sql", "migrations")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout
        here = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "renderer" / "_data"
        for folder in DATA_FOLDERS:
            for path in sorted((here / folder).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    dest = target / path.relative_to(here)
                    self.mkpath(str(dest.parent))
                    self.copy_file(str(path), str(dest), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        here = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "renderer" / "_data"
        for folder in DATA_FOLDERS:
            outputs += [str(target / p.relative_to(here)) for p in (here / folder).rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
        return outputs


# -- the C extension -------------------------------------------------------------------------
setup(
    cmdclass={"build_py": BuildPyWithData},
    ext_modules=[
        Extension(
            "renderer._binning",
            # binning.c is the module; binning.h says which file holds what.
            sources=["ext/binning.c", "ext/binning_scan.c", "ext/binning_tables.c",
                     "ext/binning_emit.c", "ext/binning_merge.c"],
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
            sources=["ext/speedtile.c", "ext/speedtile_sort.c", "ext/speedtile_pack.c",
                     "ext/pgcopy.c"],
            depends=["ext/pgcopy.h", "ext/speedtile.h"],
            # No fused multiply-add: the floats must equal the Python twin's, operation for
            # operation.
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-fvisibility=hidden", "-ffp-contract=off"],
        ),
        Extension(
            "renderer._speedfile",
            # The .spd/.nex protobuf of a subtile, from traffic_speeds' packed rows; twin:
            # renderer/traffic/export.py _speed_subtile.
            sources=["ext/speedfile.c"],
            depends=["ext/pgcopy.h", "ext/speedtile.h"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-fvisibility=hidden"],
        ),
        Extension(
            "renderer._sensors",
            # The sensors day enrichment's windows; twin: renderer/sensors/enrich_py.py. Ingest's
            # binary COPY rows; twin: renderer/sensors/rows.py. Its plain-row check; twin: the
            # Arrow rules of renderer/sensors/validate.py.
            sources=["ext/sensors.c", "ext/sensors_rows.c", "ext/sensors_check.c", "ext/pgcopy.c",
                     "ext/sensors_summary.c"],
            depends=["ext/pgcopy.h", "ext/sensors_summary.h"],
            # No FMA contraction: each mean is one division, as the SQL's and the twin's.
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-fvisibility=hidden", "-ffp-contract=off"],
        ),
        Extension(
            "renderer._utfgrid",
            # UTFGrid painting for the map tiles; twin: renderer/_utfgrid_py.py.
            sources=["ext/utfgrid.c"],
            depends=["ext/wkb.h", "ext/textbuf.h"],
            # No FMA contraction: the twin computes the same crossings bit for bit.
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-fvisibility=hidden", "-ffp-contract=off"],
        ),
        Extension(
            "renderer._mvt",
            # Mapbox Vector Tile encoding for the map tiles' export; twin: renderer/_mvt_py.py.
            sources=["ext/mvt.c"],
            depends=["ext/wkb.h"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-fvisibility=hidden", "-ffp-contract=off"],
        ),
    ]
)

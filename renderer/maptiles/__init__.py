"""The map-tiles pipeline: nested regions -> GeoJSON + UTFGrid tiles, statistics merged last.

One module per stage: :mod:`.regions` (import), :mod:`.zooms` (zoom levels, shared-arc
simplification), :mod:`.slice` (tiles per block of work), :mod:`.utfgrid` (grids),
:mod:`.features` (statistics and the served text), :mod:`.export` (folder, MBTiles,
PMTiles, MVT), :mod:`.sample` (sample regions); :mod:`.profile` is the one module that
plugs it into the engine.
"""

"""The HTTP service (``renderer serve``): signed hooks and the run API, status pages with
JSON twins, Prometheus metrics, health probes, and the scheduler thread.

Modules: ``app`` (assembles the application; the error shape), ``deps`` (what the routers
share: state, pooled connections, ``WebError``), ``auth`` (signatures, bearer tokens),
``hooks`` (write endpoints), ``runs`` (named runs), ``pages`` (HTML and JSON twins),
``metrics`` (/metrics, /healthz, /readyz), ``coverage`` (GeoJSON to SVG), ``prom`` (text
format), ``filters`` (template filters).
"""

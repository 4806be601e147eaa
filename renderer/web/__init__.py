"""The HTTP service (``renderer serve``): signed hooks and the run API, status pages with
JSON twins, Prometheus metrics, health probes, and the scheduler thread.

Modules: ``app`` (application, state, error shape), ``auth`` (signatures, bearer tokens),
``hooks`` (write endpoints), ``runs`` (named runs), ``pages`` (HTML and JSON twins),
``metrics`` (/metrics, /healthz, /readyz), ``coverage`` (GeoJSON to SVG), ``prom`` (text
format), ``filters`` (template filters).
"""

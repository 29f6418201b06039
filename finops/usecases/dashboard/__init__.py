"""What the web dashboard shows, as data: one module per page. The daemon renders it
(``finops/render/dashboard/``) and serves it (``finops/daemon/http/dashboard.py``)."""

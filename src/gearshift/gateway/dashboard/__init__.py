"""The operator dashboard at `/dashboard`: routing health, cost, signals, labels, triage, alerts, versions.

`routes.routes()` gives the Starlette routes (page, JSON API, vendored static files); `data.summary`
computes everything the page shows from the gateway's stores; `views.render_page` turns it into HTML.
Nothing is imported here, so `gateway.settings` can import `dashboard.settings` without a cycle.
"""

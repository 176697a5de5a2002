"""The control-room console: server-rendered pages over the API v1 and its live stream.

Pages are Jinja2 templates rendered by the server (`pages`); live parts follow the SSE stream
`GET /api/v1/stream` with the browser's `EventSource` and fetch the changed rows as HTML
fragments; htmx posts the small forms. A person signs in with name and password
(`cloud_ingest.auth.sessions`): the session cookie is taken by the same permission dependency as a
bearer token, so every console request and every API call it makes admits the same roles. Texts
come from the catalogs in `messages/` (Chinese by default, English). Every asset is served by the
application (`static/`, with the npm packages of `assets/` copied into `static/vendor/` by `make
assets`); nothing is fetched from elsewhere at run time.
"""

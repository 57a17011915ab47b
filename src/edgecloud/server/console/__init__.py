"""The web console: server-rendered pages over the REST API, served by the front-end at `/`.

Every page asks the REST API for what it shows and does, in-process, with the logged-in
user's own bearer token (kept in an HttpOnly cookie): the console has no access path of
its own, so it can never show or do what the API would refuse that user.
"""

"""The HTTP API under /v1/: one route table (``routes``) that registers the views and documents them.

``streams.http`` serves the table on Faust's web server; ``openapi`` turns the same table into the
OpenAPI document, so what is served and what is documented cannot drift apart.
"""

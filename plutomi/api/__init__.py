"""The JSON API for outside systems (/api/v1): routes, request and response shapes, and the
OpenAPI document that describes them."""

"""The typed HTTP contract: shared models, the operation registry and the OpenAPI document.

A slice declares each route once with `chalicelib.edge.registry.operation` (request and response
models, documented errors, who may call it); the registry registers the Chalice route, validates the
request against the models and records the operation for `chalicelib.edge.openapi`.
"""

"""The API's routes, one module per resource; each ``register(app, ctx)`` adds its routes."""

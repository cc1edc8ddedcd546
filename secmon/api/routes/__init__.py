"""The app's routers: one module per resource (JSON API) plus the console pages."""

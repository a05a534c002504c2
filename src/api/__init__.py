"""The HTTP API: thin routers per audience over the application and the read models."""

"""Local stand-ins for the engines a scaled-out deployment shares (PostgreSQL, an S3 store), for
``make cluster`` and the integration tests. Not used by the service itself."""

"""Everything that talks to Triton: inference client, model loading/readiness, the local server."""

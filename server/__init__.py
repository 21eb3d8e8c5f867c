"""The composition root: application packages, the document store, the gRPC service and the CLI."""

"""The gRPC side: server, the ctrl.v1 servicer, errors, handles, limits, validation, tensors, files, telemetry."""

"""ctrl_worker: the PyTorch side of ctrl. Holds models and tensors behind handles and serves the
`ctrl.v1.Worker` gRPC contract to the TypeScript orchestrator."""

__version__ = "0.1.0"

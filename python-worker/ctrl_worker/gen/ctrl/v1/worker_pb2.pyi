from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
    DTYPE_FLOAT16: _ClassVar[DType]
    DTYPE_BFLOAT16: _ClassVar[DType]
    DTYPE_UINT8: _ClassVar[DType]
    DTYPE_INT32: _ClassVar[DType]
    DTYPE_INT64: _ClassVar[DType]
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT32: DType
DTYPE_FLOAT16: DType
DTYPE_BFLOAT16: DType
DTYPE_UINT8: DType
DTYPE_INT32: DType
DTYPE_INT64: DType

class Tensor(_message.Message):
    __slots__ = ("shape", "dtype", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DType
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("worker_version", "protocol", "python_version", "packages", "device", "device_name", "supported_dtypes", "pid", "max_message_bytes", "max_samples")
    class PackagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKER_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_DTYPES_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    worker_version: str
    protocol: str
    python_version: str
    packages: _containers.ScalarMap[str, str]
    device: str
    device_name: str
    supported_dtypes: _containers.RepeatedScalarFieldContainer[DType]
    pid: int
    max_message_bytes: int
    max_samples: int
    def __init__(self, worker_version: _Optional[str] = ..., protocol: _Optional[str] = ..., python_version: _Optional[str] = ..., packages: _Optional[_Mapping[str, str]] = ..., device: _Optional[str] = ..., device_name: _Optional[str] = ..., supported_dtypes: _Optional[_Iterable[_Union[DType, str]]] = ..., pid: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_samples: _Optional[int] = ...) -> None: ...

class LoadBackboneRequest(_message.Message):
    __slots__ = ("source", "revision", "dtype")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    source: str
    revision: str
    dtype: DType
    def __init__(self, source: _Optional[str] = ..., revision: _Optional[str] = ..., dtype: _Optional[_Union[DType, str]] = ...) -> None: ...

class Backbone(_message.Message):
    __slots__ = ("handle", "source", "model_class", "sample_shape", "num_train_timesteps", "prediction_type", "num_parameters", "dtype")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    NUM_TRAIN_TIMESTEPS_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    NUM_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    handle: str
    source: str
    model_class: str
    sample_shape: _containers.RepeatedScalarFieldContainer[int]
    num_train_timesteps: int
    prediction_type: str
    num_parameters: int
    dtype: DType
    def __init__(self, handle: _Optional[str] = ..., source: _Optional[str] = ..., model_class: _Optional[str] = ..., sample_shape: _Optional[_Iterable[int]] = ..., num_train_timesteps: _Optional[int] = ..., prediction_type: _Optional[str] = ..., num_parameters: _Optional[int] = ..., dtype: _Optional[_Union[DType, str]] = ...) -> None: ...

class ListHandlesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HandleInfo(_message.Message):
    __slots__ = ("handle", "kind", "description")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    handle: str
    kind: str
    description: str
    def __init__(self, handle: _Optional[str] = ..., kind: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class ListHandlesResponse(_message.Message):
    __slots__ = ("handles",)
    HANDLES_FIELD_NUMBER: _ClassVar[int]
    handles: _containers.RepeatedCompositeFieldContainer[HandleInfo]
    def __init__(self, handles: _Optional[_Iterable[_Union[HandleInfo, _Mapping]]] = ...) -> None: ...

class ReleaseHandleRequest(_message.Message):
    __slots__ = ("handle",)
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    handle: str
    def __init__(self, handle: _Optional[str] = ...) -> None: ...

class ReleaseHandleResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, released: _Optional[_Iterable[str]] = ...) -> None: ...

class SampleRequest(_message.Message):
    __slots__ = ("backbone", "num_samples", "timesteps", "eta", "seed", "batch_size")
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TIMESTEPS_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    backbone: str
    num_samples: int
    timesteps: _containers.RepeatedScalarFieldContainer[int]
    eta: float
    seed: int
    batch_size: int
    def __init__(self, backbone: _Optional[str] = ..., num_samples: _Optional[int] = ..., timesteps: _Optional[_Iterable[int]] = ..., eta: _Optional[float] = ..., seed: _Optional[int] = ..., batch_size: _Optional[int] = ...) -> None: ...

class SampleProgress(_message.Message):
    __slots__ = ("step", "total_steps", "timestep", "elapsed_seconds")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    TIMESTEP_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    step: int
    total_steps: int
    timestep: int
    elapsed_seconds: float
    def __init__(self, step: _Optional[int] = ..., total_steps: _Optional[int] = ..., timestep: _Optional[int] = ..., elapsed_seconds: _Optional[float] = ...) -> None: ...

class ImageChunk(_message.Message):
    __slots__ = ("first_index", "images")
    FIRST_INDEX_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    first_index: int
    images: Tensor
    def __init__(self, first_index: _Optional[int] = ..., images: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class SampleEvent(_message.Message):
    __slots__ = ("progress", "images")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    progress: SampleProgress
    images: ImageChunk
    def __init__(self, progress: _Optional[_Union[SampleProgress, _Mapping]] = ..., images: _Optional[_Union[ImageChunk, _Mapping]] = ...) -> None: ...

class StartTrajectoryRequest(_message.Message):
    __slots__ = ("backbone", "num_samples", "seed", "initial_noise")
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INITIAL_NOISE_FIELD_NUMBER: _ClassVar[int]
    backbone: str
    num_samples: int
    seed: int
    initial_noise: Tensor
    def __init__(self, backbone: _Optional[str] = ..., num_samples: _Optional[int] = ..., seed: _Optional[int] = ..., initial_noise: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class Trajectory(_message.Message):
    __slots__ = ("handle", "shape")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    handle: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, handle: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class StepTrajectoryRequest(_message.Message):
    __slots__ = ("trajectory", "timestep", "prev_timestep", "eta", "batch_size")
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    TIMESTEP_FIELD_NUMBER: _ClassVar[int]
    PREV_TIMESTEP_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    trajectory: str
    timestep: int
    prev_timestep: int
    eta: float
    batch_size: int
    def __init__(self, trajectory: _Optional[str] = ..., timestep: _Optional[int] = ..., prev_timestep: _Optional[int] = ..., eta: _Optional[float] = ..., batch_size: _Optional[int] = ...) -> None: ...

class StepTrajectoryResponse(_message.Message):
    __slots__ = ("steps_taken", "seconds")
    STEPS_TAKEN_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    steps_taken: int
    seconds: float
    def __init__(self, steps_taken: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class ReadImagesRequest(_message.Message):
    __slots__ = ("trajectory",)
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    trajectory: str
    def __init__(self, trajectory: _Optional[str] = ...) -> None: ...

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

class Unconditional(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNCONDITIONAL_PRETRAINED: _ClassVar[Unconditional]
    UNCONDITIONAL_NULL_LABEL: _ClassVar[Unconditional]
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT32: DType
DTYPE_FLOAT16: DType
DTYPE_BFLOAT16: DType
DTYPE_UINT8: DType
DTYPE_INT32: DType
DTYPE_INT64: DType
UNCONDITIONAL_PRETRAINED: Unconditional
UNCONDITIONAL_NULL_LABEL: Unconditional

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
    __slots__ = ("worker_version", "protocol", "python_version", "packages", "device", "device_name", "supported_dtypes", "pid", "max_message_bytes", "max_samples", "max_rss_bytes", "accelerator_peak_bytes", "limits", "distributed")
    class PackagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
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
    MAX_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_PEAK_BYTES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTED_FIELD_NUMBER: _ClassVar[int]
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
    max_rss_bytes: int
    accelerator_peak_bytes: int
    limits: _containers.ScalarMap[str, int]
    distributed: DistributedInfo
    def __init__(self, worker_version: _Optional[str] = ..., protocol: _Optional[str] = ..., python_version: _Optional[str] = ..., packages: _Optional[_Mapping[str, str]] = ..., device: _Optional[str] = ..., device_name: _Optional[str] = ..., supported_dtypes: _Optional[_Iterable[_Union[DType, str]]] = ..., pid: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_samples: _Optional[int] = ..., max_rss_bytes: _Optional[int] = ..., accelerator_peak_bytes: _Optional[int] = ..., limits: _Optional[_Mapping[str, int]] = ..., distributed: _Optional[_Union[DistributedInfo, _Mapping]] = ...) -> None: ...

class DistributedInfo(_message.Message):
    __slots__ = ("rank", "world_size", "backend", "local_rank")
    RANK_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    LOCAL_RANK_FIELD_NUMBER: _ClassVar[int]
    rank: int
    world_size: int
    backend: str
    local_rank: int
    def __init__(self, rank: _Optional[int] = ..., world_size: _Optional[int] = ..., backend: _Optional[str] = ..., local_rank: _Optional[int] = ...) -> None: ...

class LoadBackboneRequest(_message.Message):
    __slots__ = ("source", "revision", "dtype", "autocast")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    AUTOCAST_FIELD_NUMBER: _ClassVar[int]
    source: str
    revision: str
    dtype: DType
    autocast: DType
    def __init__(self, source: _Optional[str] = ..., revision: _Optional[str] = ..., dtype: _Optional[_Union[DType, str]] = ..., autocast: _Optional[_Union[DType, str]] = ...) -> None: ...

class Backbone(_message.Message):
    __slots__ = ("handle", "source", "model_class", "sample_shape", "num_train_timesteps", "prediction_type", "num_parameters", "dtype", "image_shape", "text_to_image", "autocast", "steps_offset", "content_hash")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    NUM_TRAIN_TIMESTEPS_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_TYPE_FIELD_NUMBER: _ClassVar[int]
    NUM_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_TO_IMAGE_FIELD_NUMBER: _ClassVar[int]
    AUTOCAST_FIELD_NUMBER: _ClassVar[int]
    STEPS_OFFSET_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    handle: str
    source: str
    model_class: str
    sample_shape: _containers.RepeatedScalarFieldContainer[int]
    num_train_timesteps: int
    prediction_type: str
    num_parameters: int
    dtype: DType
    image_shape: _containers.RepeatedScalarFieldContainer[int]
    text_to_image: bool
    autocast: DType
    steps_offset: int
    content_hash: str
    def __init__(self, handle: _Optional[str] = ..., source: _Optional[str] = ..., model_class: _Optional[str] = ..., sample_shape: _Optional[_Iterable[int]] = ..., num_train_timesteps: _Optional[int] = ..., prediction_type: _Optional[str] = ..., num_parameters: _Optional[int] = ..., dtype: _Optional[_Union[DType, str]] = ..., image_shape: _Optional[_Iterable[int]] = ..., text_to_image: _Optional[bool] = ..., autocast: _Optional[_Union[DType, str]] = ..., steps_offset: _Optional[int] = ..., content_hash: _Optional[str] = ...) -> None: ...

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

class LabelValues(_message.Message):
    __slots__ = ("field", "values")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    field: str
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, field: _Optional[str] = ..., values: _Optional[_Iterable[int]] = ...) -> None: ...

class TextCondition(_message.Message):
    __slots__ = ("prompts", "guidance_scale")
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedScalarFieldContainer[str]
    guidance_scale: float
    def __init__(self, prompts: _Optional[_Iterable[str]] = ..., guidance_scale: _Optional[float] = ...) -> None: ...

class SampleRequest(_message.Message):
    __slots__ = ("model", "num_samples", "timesteps", "eta", "seed", "batch_size", "labels", "compute_kl", "text", "shard_offset", "shard_total")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TIMESTEPS_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_KL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SHARD_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SHARD_TOTAL_FIELD_NUMBER: _ClassVar[int]
    model: str
    num_samples: int
    timesteps: _containers.RepeatedScalarFieldContainer[int]
    eta: float
    seed: int
    batch_size: int
    labels: _containers.RepeatedCompositeFieldContainer[LabelValues]
    compute_kl: bool
    text: TextCondition
    shard_offset: int
    shard_total: int
    def __init__(self, model: _Optional[str] = ..., num_samples: _Optional[int] = ..., timesteps: _Optional[_Iterable[int]] = ..., eta: _Optional[float] = ..., seed: _Optional[int] = ..., batch_size: _Optional[int] = ..., labels: _Optional[_Iterable[_Union[LabelValues, _Mapping]]] = ..., compute_kl: _Optional[bool] = ..., text: _Optional[_Union[TextCondition, _Mapping]] = ..., shard_offset: _Optional[int] = ..., shard_total: _Optional[int] = ...) -> None: ...

class SampleKl(_message.Message):
    __slots__ = ("per_sample",)
    PER_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    per_sample: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, per_sample: _Optional[_Iterable[float]] = ...) -> None: ...

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
    __slots__ = ("progress", "images", "kl")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    KL_FIELD_NUMBER: _ClassVar[int]
    progress: SampleProgress
    images: ImageChunk
    kl: SampleKl
    def __init__(self, progress: _Optional[_Union[SampleProgress, _Mapping]] = ..., images: _Optional[_Union[ImageChunk, _Mapping]] = ..., kl: _Optional[_Union[SampleKl, _Mapping]] = ...) -> None: ...

class StartTrajectoryRequest(_message.Message):
    __slots__ = ("model", "num_samples", "seed", "initial_noise", "labels", "text")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INITIAL_NOISE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    model: str
    num_samples: int
    seed: int
    initial_noise: Tensor
    labels: _containers.RepeatedCompositeFieldContainer[LabelValues]
    text: TextCondition
    def __init__(self, model: _Optional[str] = ..., num_samples: _Optional[int] = ..., seed: _Optional[int] = ..., initial_noise: _Optional[_Union[Tensor, _Mapping]] = ..., labels: _Optional[_Iterable[_Union[LabelValues, _Mapping]]] = ..., text: _Optional[_Union[TextCondition, _Mapping]] = ...) -> None: ...

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

class LoadDatasetRequest(_message.Message):
    __slots__ = ("path", "labels_file", "label_columns")
    PATH_FIELD_NUMBER: _ClassVar[int]
    LABELS_FILE_FIELD_NUMBER: _ClassVar[int]
    LABEL_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    path: str
    labels_file: str
    label_columns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, path: _Optional[str] = ..., labels_file: _Optional[str] = ..., label_columns: _Optional[_Iterable[str]] = ...) -> None: ...

class LabelColumn(_message.Message):
    __slots__ = ("name", "num_classes", "counts", "labels")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    num_classes: int
    counts: _containers.RepeatedScalarFieldContainer[int]
    labels: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., num_classes: _Optional[int] = ..., counts: _Optional[_Iterable[int]] = ..., labels: _Optional[_Iterable[int]] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("handle", "size", "image_shape", "columns")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    handle: str
    size: int
    image_shape: _containers.RepeatedScalarFieldContainer[int]
    columns: _containers.RepeatedCompositeFieldContainer[LabelColumn]
    def __init__(self, handle: _Optional[str] = ..., size: _Optional[int] = ..., image_shape: _Optional[_Iterable[int]] = ..., columns: _Optional[_Iterable[_Union[LabelColumn, _Mapping]]] = ...) -> None: ...

class SyntheticImagesRequest(_message.Message):
    __slots__ = ("num_images", "seed")
    NUM_IMAGES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    num_images: int
    seed: int
    def __init__(self, num_images: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class CreateClassifierRequest(_message.Message):
    __slots__ = ("input_shape", "num_classes", "architecture", "width", "seed", "learning_rate", "weight_decay")
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    input_shape: _containers.RepeatedScalarFieldContainer[int]
    num_classes: int
    architecture: str
    width: int
    seed: int
    learning_rate: float
    weight_decay: float
    def __init__(self, input_shape: _Optional[_Iterable[int]] = ..., num_classes: _Optional[int] = ..., architecture: _Optional[str] = ..., width: _Optional[int] = ..., seed: _Optional[int] = ..., learning_rate: _Optional[float] = ..., weight_decay: _Optional[float] = ...) -> None: ...

class Classifier(_message.Message):
    __slots__ = ("handle", "num_parameters", "num_classes", "temperature")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    NUM_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    handle: str
    num_parameters: int
    num_classes: int
    temperature: float
    def __init__(self, handle: _Optional[str] = ..., num_parameters: _Optional[int] = ..., num_classes: _Optional[int] = ..., temperature: _Optional[float] = ...) -> None: ...

class ClassifierBatchRequest(_message.Message):
    __slots__ = ("classifier", "dataset", "label_column", "indices", "augment", "seed", "images", "return_features", "learning_rate", "adversarial_epsilon", "adversarial_steps")
    CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    LABEL_COLUMN_FIELD_NUMBER: _ClassVar[int]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    AUGMENT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    RETURN_FEATURES_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    ADVERSARIAL_EPSILON_FIELD_NUMBER: _ClassVar[int]
    ADVERSARIAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    classifier: str
    dataset: str
    label_column: str
    indices: _containers.RepeatedScalarFieldContainer[int]
    augment: bool
    seed: int
    images: Tensor
    return_features: bool
    learning_rate: float
    adversarial_epsilon: float
    adversarial_steps: int
    def __init__(self, classifier: _Optional[str] = ..., dataset: _Optional[str] = ..., label_column: _Optional[str] = ..., indices: _Optional[_Iterable[int]] = ..., augment: _Optional[bool] = ..., seed: _Optional[int] = ..., images: _Optional[_Union[Tensor, _Mapping]] = ..., return_features: _Optional[bool] = ..., learning_rate: _Optional[float] = ..., adversarial_epsilon: _Optional[float] = ..., adversarial_steps: _Optional[int] = ...) -> None: ...

class ClassifierStepResponse(_message.Message):
    __slots__ = ("loss", "accuracy")
    LOSS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    loss: float
    accuracy: float
    def __init__(self, loss: _Optional[float] = ..., accuracy: _Optional[float] = ...) -> None: ...

class Logits(_message.Message):
    __slots__ = ("logits", "labels", "temperature", "features")
    LOGITS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    logits: Tensor
    labels: _containers.RepeatedScalarFieldContainer[int]
    temperature: float
    features: Tensor
    def __init__(self, logits: _Optional[_Union[Tensor, _Mapping]] = ..., labels: _Optional[_Iterable[int]] = ..., temperature: _Optional[float] = ..., features: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class Calibration(_message.Message):
    __slots__ = ("temperature", "nll_before", "nll_after")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    NLL_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NLL_AFTER_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    nll_before: float
    nll_after: float
    def __init__(self, temperature: _Optional[float] = ..., nll_before: _Optional[float] = ..., nll_after: _Optional[float] = ...) -> None: ...

class LoadClassifierRequest(_message.Message):
    __slots__ = ("directory",)
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    directory: str
    def __init__(self, directory: _Optional[str] = ...) -> None: ...

class LabelField(_message.Message):
    __slots__ = ("name", "num_classes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    name: str
    num_classes: int
    def __init__(self, name: _Optional[str] = ..., num_classes: _Optional[int] = ...) -> None: ...

class AddControlRequest(_message.Message):
    __slots__ = ("backbone", "fields", "lora_rank", "lora_alpha", "lora_target_modules", "seed", "timestep_bands", "lora_per_label")
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    LORA_RANK_FIELD_NUMBER: _ClassVar[int]
    LORA_ALPHA_FIELD_NUMBER: _ClassVar[int]
    LORA_TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TIMESTEP_BANDS_FIELD_NUMBER: _ClassVar[int]
    LORA_PER_LABEL_FIELD_NUMBER: _ClassVar[int]
    backbone: str
    fields: _containers.RepeatedCompositeFieldContainer[LabelField]
    lora_rank: int
    lora_alpha: float
    lora_target_modules: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    timestep_bands: int
    lora_per_label: bool
    def __init__(self, backbone: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[LabelField, _Mapping]]] = ..., lora_rank: _Optional[int] = ..., lora_alpha: _Optional[float] = ..., lora_target_modules: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ..., timestep_bands: _Optional[int] = ..., lora_per_label: _Optional[bool] = ...) -> None: ...

class Control(_message.Message):
    __slots__ = ("handle", "backbone", "fields", "num_lora_parameters", "num_embedding_parameters", "num_lora_modules")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    NUM_LORA_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    NUM_EMBEDDING_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    NUM_LORA_MODULES_FIELD_NUMBER: _ClassVar[int]
    handle: str
    backbone: str
    fields: _containers.RepeatedCompositeFieldContainer[LabelField]
    num_lora_parameters: int
    num_embedding_parameters: int
    num_lora_modules: int
    def __init__(self, handle: _Optional[str] = ..., backbone: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[LabelField, _Mapping]]] = ..., num_lora_parameters: _Optional[int] = ..., num_embedding_parameters: _Optional[int] = ..., num_lora_modules: _Optional[int] = ...) -> None: ...

class ParamGroup(_message.Message):
    __slots__ = ("name", "learning_rate", "weight_decay")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    name: str
    learning_rate: float
    weight_decay: float
    def __init__(self, name: _Optional[str] = ..., learning_rate: _Optional[float] = ..., weight_decay: _Optional[float] = ...) -> None: ...

class CreateOptimizerRequest(_message.Message):
    __slots__ = ("control", "groups", "beta1", "beta2", "eps", "max_grad_norm")
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    BETA1_FIELD_NUMBER: _ClassVar[int]
    BETA2_FIELD_NUMBER: _ClassVar[int]
    EPS_FIELD_NUMBER: _ClassVar[int]
    MAX_GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    control: str
    groups: _containers.RepeatedCompositeFieldContainer[ParamGroup]
    beta1: float
    beta2: float
    eps: float
    max_grad_norm: float
    def __init__(self, control: _Optional[str] = ..., groups: _Optional[_Iterable[_Union[ParamGroup, _Mapping]]] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ..., eps: _Optional[float] = ..., max_grad_norm: _Optional[float] = ...) -> None: ...

class Optimizer(_message.Message):
    __slots__ = ("handle", "steps")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    handle: str
    steps: int
    def __init__(self, handle: _Optional[str] = ..., steps: _Optional[int] = ...) -> None: ...

class RolloutRequest(_message.Message):
    __slots__ = ("control", "num_samples", "labels", "timesteps", "eta", "seed", "grad_steps", "checkpointing", "text", "batch_size", "separate_unet_calls", "shard_offset", "shard_total")
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIMESTEPS_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    GRAD_STEPS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTING_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEPARATE_UNET_CALLS_FIELD_NUMBER: _ClassVar[int]
    SHARD_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SHARD_TOTAL_FIELD_NUMBER: _ClassVar[int]
    control: str
    num_samples: int
    labels: _containers.RepeatedCompositeFieldContainer[LabelValues]
    timesteps: _containers.RepeatedScalarFieldContainer[int]
    eta: float
    seed: int
    grad_steps: _containers.RepeatedScalarFieldContainer[bool]
    checkpointing: bool
    text: TextCondition
    batch_size: int
    separate_unet_calls: bool
    shard_offset: int
    shard_total: int
    def __init__(self, control: _Optional[str] = ..., num_samples: _Optional[int] = ..., labels: _Optional[_Iterable[_Union[LabelValues, _Mapping]]] = ..., timesteps: _Optional[_Iterable[int]] = ..., eta: _Optional[float] = ..., seed: _Optional[int] = ..., grad_steps: _Optional[_Iterable[bool]] = ..., checkpointing: _Optional[bool] = ..., text: _Optional[_Union[TextCondition, _Mapping]] = ..., batch_size: _Optional[int] = ..., separate_unet_calls: _Optional[bool] = ..., shard_offset: _Optional[int] = ..., shard_total: _Optional[int] = ...) -> None: ...

class RolloutResult(_message.Message):
    __slots__ = ("handle", "kl_per_step", "kl_per_sample", "grad_steps_kept", "seconds", "unet_calls")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    KL_PER_STEP_FIELD_NUMBER: _ClassVar[int]
    KL_PER_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    GRAD_STEPS_KEPT_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    UNET_CALLS_FIELD_NUMBER: _ClassVar[int]
    handle: str
    kl_per_step: _containers.RepeatedScalarFieldContainer[float]
    kl_per_sample: _containers.RepeatedScalarFieldContainer[float]
    grad_steps_kept: int
    seconds: float
    unet_calls: int
    def __init__(self, handle: _Optional[str] = ..., kl_per_step: _Optional[_Iterable[float]] = ..., kl_per_sample: _Optional[_Iterable[float]] = ..., grad_steps_kept: _Optional[int] = ..., seconds: _Optional[float] = ..., unet_calls: _Optional[int] = ...) -> None: ...

class ClassifierLogProbTerm(_message.Message):
    __slots__ = ("classifier", "label_field", "confidence_cap")
    CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_CAP_FIELD_NUMBER: _ClassVar[int]
    classifier: str
    label_field: str
    confidence_cap: float
    def __init__(self, classifier: _Optional[str] = ..., label_field: _Optional[str] = ..., confidence_cap: _Optional[float] = ...) -> None: ...

class KlTerm(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConstantTerm(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class RewardTerm(_message.Message):
    __slots__ = ("weight", "classifier_log_prob", "kl", "constant")
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_LOG_PROB_FIELD_NUMBER: _ClassVar[int]
    KL_FIELD_NUMBER: _ClassVar[int]
    CONSTANT_FIELD_NUMBER: _ClassVar[int]
    weight: float
    classifier_log_prob: ClassifierLogProbTerm
    kl: KlTerm
    constant: ConstantTerm
    def __init__(self, weight: _Optional[float] = ..., classifier_log_prob: _Optional[_Union[ClassifierLogProbTerm, _Mapping]] = ..., kl: _Optional[_Union[KlTerm, _Mapping]] = ..., constant: _Optional[_Union[ConstantTerm, _Mapping]] = ...) -> None: ...

class BackwardRequest(_message.Message):
    __slots__ = ("rollout", "terms", "loss_scale")
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    LOSS_SCALE_FIELD_NUMBER: _ClassVar[int]
    rollout: str
    terms: _containers.RepeatedCompositeFieldContainer[RewardTerm]
    loss_scale: float
    def __init__(self, rollout: _Optional[str] = ..., terms: _Optional[_Iterable[_Union[RewardTerm, _Mapping]]] = ..., loss_scale: _Optional[float] = ...) -> None: ...

class TermValue(_message.Message):
    __slots__ = ("mean", "per_sample")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    PER_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    mean: float
    per_sample: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, mean: _Optional[float] = ..., per_sample: _Optional[_Iterable[float]] = ...) -> None: ...

class BackwardResponse(_message.Message):
    __slots__ = ("loss", "terms", "seconds", "non_finite")
    LOSS_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    NON_FINITE_FIELD_NUMBER: _ClassVar[int]
    loss: float
    terms: _containers.RepeatedCompositeFieldContainer[TermValue]
    seconds: float
    non_finite: bool
    def __init__(self, loss: _Optional[float] = ..., terms: _Optional[_Iterable[_Union[TermValue, _Mapping]]] = ..., seconds: _Optional[float] = ..., non_finite: _Optional[bool] = ...) -> None: ...

class OptimizerStepRequest(_message.Message):
    __slots__ = ("optimizer", "learning_rate_scale", "discard", "checksum")
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_SCALE_FIELD_NUMBER: _ClassVar[int]
    DISCARD_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    optimizer: str
    learning_rate_scale: float
    discard: bool
    checksum: bool
    def __init__(self, optimizer: _Optional[str] = ..., learning_rate_scale: _Optional[float] = ..., discard: _Optional[bool] = ..., checksum: _Optional[bool] = ...) -> None: ...

class OptimizerStepResponse(_message.Message):
    __slots__ = ("grad_norm", "steps", "skipped", "parameter_checksum")
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    grad_norm: float
    steps: int
    skipped: bool
    parameter_checksum: str
    def __init__(self, grad_norm: _Optional[float] = ..., steps: _Optional[int] = ..., skipped: _Optional[bool] = ..., parameter_checksum: _Optional[str] = ...) -> None: ...

class SaveRequest(_message.Message):
    __slots__ = ("handle", "directory", "optimizer", "overwrite")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    handle: str
    directory: str
    optimizer: str
    overwrite: bool
    def __init__(self, handle: _Optional[str] = ..., directory: _Optional[str] = ..., optimizer: _Optional[str] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class SaveResponse(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, files: _Optional[_Iterable[str]] = ...) -> None: ...

class LoadControlRequest(_message.Message):
    __slots__ = ("backbone", "directory")
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    backbone: str
    directory: str
    def __init__(self, backbone: _Optional[str] = ..., directory: _Optional[str] = ...) -> None: ...

class LoadOptimizerStateRequest(_message.Message):
    __slots__ = ("optimizer", "directory")
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    optimizer: str
    directory: str
    def __init__(self, optimizer: _Optional[str] = ..., directory: _Optional[str] = ...) -> None: ...

class DenoisingLossRequest(_message.Message):
    __slots__ = ("control", "dataset", "indices", "labels", "timesteps", "seed", "loss_scale")
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIMESTEPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LOSS_SCALE_FIELD_NUMBER: _ClassVar[int]
    control: str
    dataset: str
    indices: _containers.RepeatedScalarFieldContainer[int]
    labels: _containers.RepeatedCompositeFieldContainer[LabelValues]
    timesteps: _containers.RepeatedScalarFieldContainer[int]
    seed: int
    loss_scale: float
    def __init__(self, control: _Optional[str] = ..., dataset: _Optional[str] = ..., indices: _Optional[_Iterable[int]] = ..., labels: _Optional[_Iterable[_Union[LabelValues, _Mapping]]] = ..., timesteps: _Optional[_Iterable[int]] = ..., seed: _Optional[int] = ..., loss_scale: _Optional[float] = ...) -> None: ...

class DenoisingLossResponse(_message.Message):
    __slots__ = ("loss", "seconds")
    LOSS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    loss: float
    seconds: float
    def __init__(self, loss: _Optional[float] = ..., seconds: _Optional[float] = ...) -> None: ...

class NoisyClassifierStepRequest(_message.Message):
    __slots__ = ("classifier", "backbone", "dataset", "label_column", "indices", "timesteps", "seed", "augment", "learning_rate")
    CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    LABEL_COLUMN_FIELD_NUMBER: _ClassVar[int]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    TIMESTEPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    AUGMENT_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    classifier: str
    backbone: str
    dataset: str
    label_column: str
    indices: _containers.RepeatedScalarFieldContainer[int]
    timesteps: _containers.RepeatedScalarFieldContainer[int]
    seed: int
    augment: bool
    learning_rate: float
    def __init__(self, classifier: _Optional[str] = ..., backbone: _Optional[str] = ..., dataset: _Optional[str] = ..., label_column: _Optional[str] = ..., indices: _Optional[_Iterable[int]] = ..., timesteps: _Optional[_Iterable[int]] = ..., seed: _Optional[int] = ..., augment: _Optional[bool] = ..., learning_rate: _Optional[float] = ...) -> None: ...

class GuidanceTerm(_message.Message):
    __slots__ = ("scale", "classifier_free", "reconstruction", "noise_aware_classifier")
    SCALE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_FREE_FIELD_NUMBER: _ClassVar[int]
    RECONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    NOISE_AWARE_CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    scale: float
    classifier_free: ClassifierFreeGuidance
    reconstruction: ClassifierGradientGuidance
    noise_aware_classifier: ClassifierGradientGuidance
    def __init__(self, scale: _Optional[float] = ..., classifier_free: _Optional[_Union[ClassifierFreeGuidance, _Mapping]] = ..., reconstruction: _Optional[_Union[ClassifierGradientGuidance, _Mapping]] = ..., noise_aware_classifier: _Optional[_Union[ClassifierGradientGuidance, _Mapping]] = ...) -> None: ...

class ClassifierFreeGuidance(_message.Message):
    __slots__ = ("control", "labels", "unconditional")
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    UNCONDITIONAL_FIELD_NUMBER: _ClassVar[int]
    control: str
    labels: _containers.RepeatedCompositeFieldContainer[LabelValues]
    unconditional: Unconditional
    def __init__(self, control: _Optional[str] = ..., labels: _Optional[_Iterable[_Union[LabelValues, _Mapping]]] = ..., unconditional: _Optional[_Union[Unconditional, str]] = ...) -> None: ...

class ClassifierGradientGuidance(_message.Message):
    __slots__ = ("classifier", "targets")
    CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    classifier: str
    targets: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, classifier: _Optional[str] = ..., targets: _Optional[_Iterable[int]] = ...) -> None: ...

class StartGuidedTrajectoryRequest(_message.Message):
    __slots__ = ("backbone", "num_samples", "seed", "terms", "compute_kl")
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_KL_FIELD_NUMBER: _ClassVar[int]
    backbone: str
    num_samples: int
    seed: int
    terms: _containers.RepeatedCompositeFieldContainer[GuidanceTerm]
    compute_kl: bool
    def __init__(self, backbone: _Optional[str] = ..., num_samples: _Optional[int] = ..., seed: _Optional[int] = ..., terms: _Optional[_Iterable[_Union[GuidanceTerm, _Mapping]]] = ..., compute_kl: _Optional[bool] = ...) -> None: ...

import grpc
import pytest
import torch

from ctrl_worker.rpc.errors import RequestError
from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb
from ctrl_worker.rpc.tensors import from_proto, images_to_uint8, to_proto


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.uint8, torch.int32, torch.int64])
def test_round_trip(dtype):
    tensor = (torch.arange(24) - 5).reshape(2, 3, 4).to(dtype)
    if dtype == torch.uint8:
        tensor = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4)
    back = from_proto(to_proto(tensor), "x")
    assert back.dtype == dtype
    assert torch.equal(back, tensor)


def test_bfloat16_travels_as_16_bit_words():
    message = to_proto(torch.tensor([1.0, -2.0], dtype=torch.bfloat16))
    assert message.dtype == pb.DTYPE_BFLOAT16
    assert len(message.data) == 4


def test_malformed_tensors_name_the_field():
    good = to_proto(torch.zeros(2, 3))
    with pytest.raises(RequestError, match=r"^noise\.shape: expected \[3, 2\], got \[2, 3\]") as info:
        from_proto(pb.Tensor(shape=[2, 3], dtype=pb.DTYPE_FLOAT32, data=good.data), "noise", (3, 2))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(RequestError, match=r"^noise\.data: holds 4 bytes"):
        from_proto(pb.Tensor(shape=[2, 3], dtype=pb.DTYPE_FLOAT32, data=b"\0" * 4), "noise")
    with pytest.raises(RequestError, match=r"^noise\.dtype: unsupported dtype 0"):
        from_proto(pb.Tensor(shape=[1], data=b"\0" * 4), "noise")
    with pytest.raises(RequestError, match=r"^noise\.shape: dimensions must be non-negative"):
        from_proto(pb.Tensor(shape=[-1], dtype=pb.DTYPE_FLOAT32), "noise")


def test_images_to_uint8_maps_minus_one_to_one_onto_0_255_nhwc():
    samples = torch.tensor([-1.0, 0.0, 1.0, 3.0]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    images = images_to_uint8(samples)
    assert images.shape == (1, 2, 2, 3)
    assert images[0, :, :, 0].flatten().tolist() == [0, 128, 255, 255]

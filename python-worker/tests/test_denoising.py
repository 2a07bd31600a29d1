import pytest
import torch
import torch.nn.functional as F

from ctrl_worker.diffusion.denoising import check_rows, denoising_loss, training_target
from ctrl_worker.rpc.errors import RequestError
from ctrl_worker.diffusion.forward_process import add_noise
from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb
from ctrl_worker.ctrl.optim import create_optimizer, optimizer_step
from ctrl_worker.rpc.tensors import uint8_to_model_range
from support import bright_dark_dataset, label_messages

N = 8
ROWS = torch.arange(N)
TIMESTEPS = [50, 150, 300, 450, 600, 750, 900, 990]


def _dataset():
    return bright_dark_dataset(n=N, extra_columns={"a": torch.arange(N) % 3, "b": torch.arange(N) % 2})


def _labels(control, a=None, b=None):
    return control.parse_labels(label_messages(a=a or [i % 3 for i in range(N)], b=b or [i % 2 for i in range(N)]), N)


def test_a_fresh_control_has_the_backbones_denoising_loss(make_control):
    control = make_control()
    dataset = _dataset()
    result = denoising_loss(control, dataset, ROWS, _labels(control), TIMESTEPS, seed=4, loss_scale=1.0)
    backbone = control.backbone
    x0 = uint8_to_model_range(dataset.images)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    t = torch.tensor(TIMESTEPS)
    with torch.no_grad():
        expected = F.mse_loss(backbone.unet(add_noise(backbone, x0, t, noise), t).sample, noise)
    assert result.loss == pytest.approx(float(expected), rel=1e-5)


def test_gradients_reach_lora_and_the_used_embedding_rows_but_never_the_null_row(make_control):
    control = make_control()
    labels = _labels(control, a=[0, 0, 1, -1, 0, 1, -1, 0], b=[-1] * N)  # class 2 of "a" is not used
    denoising_loss(control, _dataset(), ROWS, labels, TIMESTEPS, seed=0, loss_scale=0.5)
    lora_b = [p for name, p in control.backbone.unet.named_parameters() if "lora_B" in name]
    assert lora_b and all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)
    a, b = control.embeddings["a"].weight.grad, control.embeddings["b"].weight.grad
    assert a[:2].abs().sum(1).gt(0).all() and not a[2].any() and not a[3].any()
    assert b is None or not b.any()


def test_each_row_trains_the_bands_at_its_own_timestep(make_control):
    # Rows at timesteps 50 and 150 only: with 5 bands (knots 0, 250, 500, 750, 999) only bands 0
    # and 1 are used, so the other bands get no gradient.
    control = make_control(fields={"a": 3}, bands=5)
    rows = torch.tensor([0, 1])
    labels = control.parse_labels(label_messages(a=[0, 1]), 2)
    denoising_loss(control, _dataset(), rows, labels, [50, 150], seed=0, loss_scale=1.0)
    grad = control.embeddings["a"].weight.grad.view(4, 5, -1)
    assert grad[:2, :2].abs().sum(-1).gt(0).all()
    assert not grad[:, 2:].any() and not grad[2:].any()


def test_training_lowers_the_loss_on_a_fixed_batch(make_control):
    control = make_control()
    groups = [pb.ParamGroup(name="lora", learning_rate=3e-3), pb.ParamGroup(name="embedding", learning_rate=3e-2)]
    opt = create_optimizer(control, groups, 0.0, 0.0, 0.0, 1.0)
    dataset, labels = _dataset(), _labels(control)
    losses = []
    for _ in range(12):
        losses.append(denoising_loss(control, dataset, ROWS, labels, TIMESTEPS, seed=1, loss_scale=1.0).loss)
        optimizer_step(opt)
    assert losses[-1] < 0.9 * losses[0]


def test_the_target_follows_the_prediction_type(backbone):
    x0, noise, t = torch.ones(2, 3, 16, 16), torch.full((2, 3, 16, 16), 2.0), torch.tensor([100, 800])
    assert torch.equal(training_target(backbone, x0, noise, t), noise)
    alpha = backbone.alphas_cumprod[t].float()[:, None, None, None]
    backbone.prediction_type = "v_prediction"
    torch.testing.assert_close(training_target(backbone, x0, noise, t), alpha.sqrt() * noise - (1 - alpha).sqrt() * x0)
    backbone.prediction_type = "sample"
    assert torch.equal(training_target(backbone, x0, noise, t), x0)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"timesteps": TIMESTEPS[:-1]}, "timesteps"),
        ({"timesteps": [1000] + TIMESTEPS[1:]}, "timesteps[0]"),
        ({"loss_scale": 0.0}, "loss_scale"),
    ],
)
def test_bad_requests_name_their_field(make_control, change, field):
    control = make_control()
    kwargs = {"timesteps": TIMESTEPS, "seed": 0, "loss_scale": 1.0, **change}
    with pytest.raises(RequestError) as error:
        denoising_loss(control, _dataset(), ROWS, _labels(control), **kwargs)
    assert error.value.field == field


def test_rows_must_exist_and_match_the_backbones_samples(backbone):
    with pytest.raises(RequestError) as error:
        check_rows(_dataset(), backbone, [0, N])
    assert error.value.field == "indices[1]"
    with pytest.raises(RequestError) as error:
        check_rows(bright_dark_dataset(n=4, size=8), backbone, [0])
    assert error.value.field == "dataset"

import grpc
import pytest
import torch

from ctrl_worker.diffusion.branches import StepModel
from peft.tuners.tuners_utils import BaseTunerLayer

from ctrl_worker.ctrl.control import validate_fields, validate_lora, validate_timestep_bands
from ctrl_worker.rpc.errors import RequestError
from support import CLOSE, assert_zero_kl, label_messages, perturb, sample


def test_a_fresh_control_samples_exactly_its_backbone(backbone, make_control):
    before = sample(backbone).x
    control = make_control()
    labels = control.parse_labels(label_messages(a=[0, 2, -1], b=[1, -1, 0]), 3)
    conditioned = sample(backbone, control, labels, compute_kl=True)
    # The fused call runs 6 rows where the plain sampler runs 3: equal up to float rounding.
    torch.testing.assert_close(conditioned.x, before, **CLOSE)
    assert_zero_kl(conditioned.kl)


def test_only_lora_and_embeddings_are_trainable(backbone, make_control):
    control = make_control(fields={"a": 3}, targets=("to_q", "conv1"), rank=2)
    trainable = {id(p) for p in backbone.unet.parameters() if p.requires_grad} | {
        id(p) for p in control.embeddings.parameters() if p.requires_grad
    }
    assert trainable == {id(p) for p in control.parameters()}
    assert all(p.requires_grad for p in control.parameters())
    assert control.num_lora_modules == 4 + 8  # four attention blocks, eight resnets
    assert control.embeddings["a"].weight.shape == (4, 64)
    assert not control.embeddings["a"].weight.any()


def test_trained_weights_change_the_samples_but_not_the_backbone(backbone, make_control):
    before = sample(backbone).x
    control = make_control()
    perturb(control)
    labels = control.parse_labels(label_messages(a=[0, 1, 2], b=[0, 1, 0]), 3)
    conditioned = sample(backbone, control, labels, compute_kl=True)
    assert not torch.equal(conditioned.x, before)
    assert (conditioned.kl > 0).all()
    assert torch.equal(sample(backbone).x, before)  # adapters are off outside `conditioned`
    # The null label uses the last row, which is never trained: labels -1 differ from class 0.
    null = control.parse_labels(label_messages(a=[-1] * 3, b=[-1] * 3), 3)
    assert not torch.equal(sample(backbone, control, null).x, conditioned.x)


def test_band_weights_interpolate_between_knots_spread_over_the_timesteps(make_control):
    control = make_control(bands=5)  # knots at 0, 249.75, 499.5, 749.25, 999
    weights = control.band_weights(torch.tensor([0.0, 999.0, 499.5, 624.375]), 4)
    expected = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 1, 0, 0], [0, 0, 0.5, 0.5, 0]], dtype=torch.float32)
    torch.testing.assert_close(weights, expected, rtol=0, atol=1e-6)
    # One timestep for the whole call (a sampler step) is spread over its rows.
    torch.testing.assert_close(control.band_weights(torch.tensor([999.0]), 3), expected[1].expand(3, 5))


def test_a_band_acts_only_at_its_own_timesteps(backbone, make_control):
    control = make_control(fields={"a": 3}, bands=3)
    assert control.embeddings["a"].weight.shape == (4, 3 * 64)
    labels = control.parse_labels(label_messages(a=[0, 1, 2]), 3)
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        control.embeddings["a"].weight[:3, :64] = 0.5  # band 0: the knot at timestep 0
        pretrained = {t: control.eps(x, t, None) for t in (0, 999)}
        assert not torch.allclose(control.eps(x, 0, labels), pretrained[0])
        # At the last timestep band 0 has weight 0: exactly the pre-trained model (LoRA is still zero).
        torch.testing.assert_close(control.eps(x, 999, labels), pretrained[999], rtol=0, atol=0)


def test_one_band_is_the_papers_single_embedding(backbone, make_control):
    control = make_control(fields={"a": 3}, bands=1)
    with torch.no_grad():
        control.embeddings["a"].weight[:3] = 0.5
    labels = control.parse_labels(label_messages(a=[0, 1, 2]), 3)
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        shifted = {t: control.eps(x, t, labels) for t in (0, 999)}
        assert not torch.allclose(shifted[999], control.eps(x, 999, None))
        assert not torch.allclose(shifted[0], control.eps(x, 0, None))


def _lora_only(control, scale: float = 0.3, seed: int = 1) -> None:
    """LoRA weights off zero, label embeddings left at zero: only LoRA moves the samples."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in control.lora_parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))


def test_a_per_label_lora_uses_each_samples_own_labels_blocks(backbone, make_control):
    control = make_control(fields={"a": 3, "b": 2}, rank=2, per_label=True)
    assert control.label_blocks(control.parse_labels(label_messages(a=[2, -1], b=[0, 1]), 2)).tolist() == [
        [0, 0, 1, 1, 0],
        [0, 0, 0, 0, 1],
    ]
    layer = control._tuner_layers[0]
    assert layer.r["ctrl"] == 2 * 5 and layer.scaling["ctrl"] == 1.0  # 5 blocks of rank 2, alpha / rank each
    _lora_only(control)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pretrained = control.eps(x, 500, None)
        together = control.eps(x, 500, control.parse_labels(label_messages(a=[0, 1, -1, 0], b=[-1, -1, -1, 1]), 4))
        # A sample's output depends on its own labels only: the same as when sampled alone.
        for i, (a, b) in enumerate([(0, -1), (1, -1), (-1, -1), (0, 1)]):
            alone = control.eps(x[i : i + 1], 500, control.parse_labels(label_messages(a=[a], b=[b]), 1))
            torch.testing.assert_close(together[i : i + 1], alone, rtol=0, atol=1e-5)
    # The null label uses no block: exactly the pre-trained model (embeddings are still zero).
    torch.testing.assert_close(together[2], pretrained[2], rtol=0, atol=0)
    # Different labels use different blocks, so they differ; a second field's label adds its block.
    assert not torch.allclose(together[0], together[1]) and not torch.allclose(together[0], together[3])
    assert not torch.allclose(together[0], pretrained[0])


def test_a_shared_lora_moves_the_null_label_too(backbone, make_control):
    control = make_control(fields={"a": 3}, rank=2)
    _lora_only(control)
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        null = control.eps(x, 500, control.parse_labels(label_messages(a=[-1]), 1))
        assert not torch.allclose(null, control.eps(x, 500, None))


def test_a_per_label_lora_within_the_rank_limit(make_control):
    with pytest.raises(RequestError, match=r"^lora_rank: with lora_per_label, lora_rank x labels \(64 x 5 = 320\) must be at most 256"):
        make_control(fields={"a": 3, "b": 2}, rank=64, per_label=True)


@pytest.mark.parametrize("bands", [0, 65, 2.5, True])
def test_timestep_bands_are_validated(bands):
    with pytest.raises(RequestError, match=r"^timestep_bands: must be an integer in \[1, 64\]"):
        validate_timestep_bands(bands)


def test_batching_does_not_change_conditioned_samples(backbone, make_control):
    control = make_control()
    perturb(control)
    labels = control.parse_labels(label_messages(a=[0, 1, 2], b=[0, 1, 0]), 3)
    model = StepModel(backbone, control, labels)
    x = torch.randn(3, 3, 16, 16)
    batched, batched_ref = model.predict(x, 500, True, 2)
    whole, whole_ref = model.predict(x, 500, True, 0)
    torch.testing.assert_close(batched, whole, rtol=0, atol=1e-5)
    torch.testing.assert_close(batched_ref, whole_ref, rtol=0, atol=1e-5)


def test_close_takes_the_adapters_out(backbone, make_control):
    before = sample(backbone).x
    control = make_control()
    perturb(control)
    control.close()
    assert not any(isinstance(m, BaseTunerLayer) for m in backbone.unet.modules())
    assert not hasattr(backbone.unet, "peft_config")
    assert torch.equal(sample(backbone).x, before)
    make_control()  # a new control fits again


def test_target_modules_must_match_adaptable_layers(make_control):
    with pytest.raises(RequestError, match=r"^lora_target_modules: 'to_qq', 'nope' match no module of the UNet; its layers include .*to_q"):
        make_control(targets=("to_q", "to_qq", "nope"))
    with pytest.raises(RequestError, match=r"^lora_target_modules\[1\]: 'to_out' matches .*to_out \(ModuleList\)"):
        make_control(targets=("to_q", "to_out"))


@pytest.mark.parametrize(
    "fields, pattern",
    [
        ([], r"^fields: at least one label field"),
        ([("a", 2), ("a", 3)], r"^fields\[1\]\.name: 'a' is given twice"),
        ([("", 2)], r"^fields\[0\]\.name: must not be empty"),
        ([("a.b", 2)], r"^fields\[0\]\.name: use letters"),
        ([("a", 0)], r"^fields\[0\]\.num_classes: must be at least 1"),
    ],
)
def test_fields_are_validated(fields, pattern):
    with pytest.raises(RequestError, match=pattern) as info:
        validate_fields(fields)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_lora_settings_are_validated():
    with pytest.raises(RequestError, match=r"^lora_rank: must be at least 1"):
        validate_lora(0, 4.0, ["to_q"])
    with pytest.raises(RequestError, match=r"^lora_alpha: must be positive"):
        validate_lora(4, 0.0, ["to_q"])
    with pytest.raises(RequestError, match=r"^lora_target_modules: name at least one"):
        validate_lora(4, 4.0, [])


@pytest.mark.parametrize(
    "labels, pattern",
    [
        (dict(a=[0, 1], b=[0, 1], c=[0, 0]), r"^labels\[2\]\.field: no label field 'c'; this control has a, b"),
        (dict(a=[0, 1, 2]), r"^labels\[0\]\.values: expected 2 values \(num_samples\), got 3"),
        (dict(a=[0, 3], b=[0, 0]), r"^labels\[0\]\.values\[1\]: must be in \[-1, 3\), got 3"),
        (dict(a=[0, 0], b=[-2, 0]), r"^labels\[1\]\.values\[0\]: must be in \[-1, 2\), got -2"),
        (dict(a=[0, 1]), r"^labels: no values for b; every field of the control \(a, b\) needs values"),
    ],
)
def test_labels_are_validated(make_control, labels, pattern):
    control = make_control()
    with pytest.raises(RequestError, match=pattern):
        control.parse_labels(label_messages(**labels), 2)


def test_a_field_given_twice_is_refused(make_control):
    control = make_control()
    with pytest.raises(RequestError, match=r"^labels\[1\]\.field: 'a' is given twice"):
        control.parse_labels(label_messages(a=[0]) + label_messages(a=[1]), 1)

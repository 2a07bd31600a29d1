import pytest
import torch

from ctrl_worker.rpc.errors import RequestError
from ctrl_worker.ctrl.rewards import Term, backward
from ctrl_worker.ctrl.rollout import check_grad_steps
from support import CLOSE, TIMESTEPS, assert_zero_kl, classifier_term, label_messages, perturb, run_rollout, sample, tiny_classifier


def _grads(control) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in control.parameters()]


def test_a_fresh_control_has_zero_kl_and_samples_like_its_backbone(backbone, make_control):
    plain = sample(backbone, seed=3).x
    control = make_control()
    result = run_rollout(control)
    assert_zero_kl(result.kl_per_step)
    assert_zero_kl(result.kl)
    torch.testing.assert_close(result.images.detach(), plain, **CLOSE)
    assert result.grad_steps_kept == 2


def test_trained_weights_have_a_positive_kl_at_stochastic_steps_only(make_control):
    control = make_control()
    perturb(control)
    result = run_rollout(control)
    assert all(kl > 0 for kl in result.kl_per_step[:-1])
    assert result.kl_per_step[-1] == 0.0  # the last step goes to alpha = 1: deterministic
    assert (result.kl > 0).all()
    torch.testing.assert_close(result.kl.mean().item(), sum(result.kl_per_step), rtol=1e-5, atol=0)
    assert run_rollout(control, eta=0.0).kl_per_step == [0.0] * len(TIMESTEPS)


def test_gradients_reach_lora_and_embeddings_through_a_truncated_checkpointed_rollout(make_control):
    control = make_control()
    result = run_rollout(control, grad_steps=(False, False, True, False), checkpointing=True)
    backward(result, [classifier_term(tiny_classifier(), "a")(result)], loss_scale=1.0)
    lora_b = [p for name, p in control.backbone.unet.named_parameters() if "lora_B" in name]
    assert lora_b and all(p.grad is not None for p in lora_b)
    assert sum(float(p.grad.abs().sum()) for p in lora_b) > 0
    table = control.embeddings["a"].weight
    assert table.grad[:3].abs().sum(1).gt(0).all()  # the three classes the samples used
    assert not table.grad[3].any()  # the null row is never trained


def test_without_kept_steps_no_parameter_gets_a_gradient(make_control):
    control = make_control()
    perturb(control)
    result = run_rollout(control, grad_steps=(False,) * 4)
    outcome = backward(result, [classifier_term(tiny_classifier(), "a")(result), Term(-1.0, _kl())], 1.0)
    assert outcome.loss != 0
    assert all(g is None for g in _grads(control))


def test_checkpointing_gives_the_same_gradients(make_control):
    control = make_control()
    perturb(control)
    classifier = tiny_classifier()

    labels = control.parse_labels(label_messages(a=[0, 2], b=[1, 0]), 2)

    def gradients(checkpointing: bool) -> list[torch.Tensor]:
        result = run_rollout(control, labels, checkpointing=checkpointing)
        backward(result, [classifier_term(classifier, "b")(result), Term(-0.1, _kl())], 1.0)
        grads = _grads(control)
        for p in control.parameters():
            p.grad = None
        return grads

    with_checkpoints, without = gradients(True), gradients(False)
    assert sum(g is not None for g in without) > 0
    for a, b in zip(with_checkpoints, without):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_grad_steps_need_one_flag_per_timestep():
    with pytest.raises(RequestError, match=r"^grad_steps: expected 4 flags \(one per timestep\), got 3"):
        check_grad_steps([True, False, True], 4)


def _kl():
    from ctrl_worker.ctrl.rewards import Kl

    return Kl()

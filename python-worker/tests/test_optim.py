import grpc
import pytest
import torch

from ctrl_worker.rpc.errors import RequestError
from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb
from ctrl_worker.ctrl.optim import create_optimizer, load_state_tensors, optimizer_step, state_tensors
from ctrl_worker.ctrl.rewards import backward
from support import classifier_term, label_messages, run_rollout, tiny_classifier

GROUPS = [pb.ParamGroup(name="lora", learning_rate=1e-2), pb.ParamGroup(name="embedding", learning_rate=5e-2, weight_decay=0.1)]


def _optimizer(control, groups=GROUPS, beta1=0.0, beta2=0.0, eps=0.0, max_grad_norm=0.0):
    return create_optimizer(control, groups, beta1, beta2, eps, max_grad_norm)


def test_defaults_and_groups(make_control):
    control = make_control()
    opt = _optimizer(control)
    groups = opt.optimizer.param_groups
    assert [g["name"] for g in groups] == ["lora", "embedding"]
    assert groups[0]["betas"] == (0.9, 0.999) and groups[0]["eps"] == 1e-8
    assert groups[1]["weight_decay"] == pytest.approx(0.1) and groups[1]["lr"] == pytest.approx(5e-2)
    assert len(opt.params()) == len(control.parameters())


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(groups=[]), r"^groups: at least one parameter group"),
        (dict(groups=[pb.ParamGroup(name="unet", learning_rate=1.0)]), r"^groups\[0\]\.name: must be one of lora, embedding, got 'unet'"),
        (dict(groups=[GROUPS[0], GROUPS[0]]), r"^groups\[1\]\.name: 'lora' is given twice"),
        (dict(groups=[pb.ParamGroup(name="lora")]), r"^groups\[0\]\.learning_rate: must be positive"),
        (dict(groups=[pb.ParamGroup(name="lora", learning_rate=1, weight_decay=-1)]), r"^groups\[0\]\.weight_decay: must be non-negative"),
        (dict(beta1=1.0), r"^beta1: must be in \[0, 1\)"),
        (dict(beta2=-0.5), r"^beta2: must be in \[0, 1\)"),
        (dict(eps=-1e-8), r"^eps: must be positive"),
        (dict(max_grad_norm=-1.0), r"^max_grad_norm: must be non-negative"),
    ],
)
def test_settings_are_validated(make_control, kwargs, pattern):
    with pytest.raises(RequestError, match=pattern):
        _optimizer(make_control(), **kwargs)


def test_a_step_needs_gradients(make_control):
    control = make_control()
    opt = _optimizer(control)
    rollout = run_rollout(control, grad_steps=(False,) * 4)
    backward(rollout, [classifier_term(tiny_classifier(), "a")(rollout)], 1.0)
    with pytest.raises(RequestError, match=r"^optimizer: no gradient was accumulated since the last step") as info:
        optimizer_step(opt)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_steps_raise_the_reward_of_a_repeated_objective(make_control):
    control = make_control(targets=("to_q", "to_v"))
    opt = _optimizer(control, max_grad_norm=1.0)
    classifier = tiny_classifier()
    labels = control.parse_labels(label_messages(a=[0, 2], b=[1, 0]), 2)
    before = [p.detach().clone() for p in control.parameters()]
    losses = []
    for step in range(3):
        rollout = run_rollout(control, labels, grad_steps=(False, False, True, True), checkpointing=False)
        losses.append(backward(rollout, [classifier_term(classifier, "a")(rollout)], 1.0).loss)
        assert optimizer_step(opt).grad_norm > 0
        assert opt.steps == step + 1 and control.version == step + 1
        assert all(p.grad is None for p in control.parameters())
    assert losses[-1] < losses[0]
    changed = {id(p) for a, p in zip(before, control.parameters()) if not torch.equal(a, p)}
    assert id(control.embeddings["a"].weight) in changed
    assert any(id(p) in changed for name, p in control.backbone.unet.named_parameters() if "lora_B" in name)
    # The null rows get no gradient, and weight decay keeps a zero row at zero.
    assert not control.embeddings["a"].weight[3].any()


def test_the_norm_is_reported_before_clipping(make_control, monkeypatch):
    control = make_control()
    opt = _optimizer(control, max_grad_norm=1.0)
    for p in control.parameters():
        p.grad = torch.ones_like(p)
    seen = []
    step = opt.optimizer.step
    monkeypatch.setattr(opt.optimizer, "step", lambda: seen.append(torch.nn.utils.get_total_norm([p.grad for p in control.parameters()])) or step())
    count = sum(p.numel() for p in control.parameters())
    assert optimizer_step(opt).grad_norm == pytest.approx(count**0.5, rel=1e-5)
    assert float(seen[0]) == pytest.approx(1.0, rel=1e-5)


def test_state_round_trip(make_control):
    control = make_control()
    opt = _optimizer(control)
    rollout = run_rollout(control)
    backward(rollout, [classifier_term(tiny_classifier(), "a")(rollout)], 1.0)
    optimizer_step(opt)
    tensors, description = state_tensors(opt)
    assert {name.rsplit(".", 1)[1] for name in tensors} == {"exp_avg", "exp_avg_sq", "step"}

    fresh = _optimizer(control)
    load_state_tensors(fresh, tensors, description, "optimizer.json")
    assert fresh.steps == 1
    for p in control.parameters():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(fresh.optimizer.state[p][key], opt.optimizer.state[p][key])

    other = _optimizer(control, groups=GROUPS[:1])
    with pytest.raises(RequestError, match=r"^directory: optimizer.json: its groups do not match"):
        load_state_tensors(other, tensors, description, "optimizer.json")
    bad = dict(tensors)
    bad["state.0.exp_avg"] = torch.zeros(7)
    with pytest.raises(RequestError, match=r"^directory: optimizer.json: state.0.exp_avg is \[7\], expected"):
        load_state_tensors(fresh, bad, description, "optimizer.json")


def test_a_learning_rate_scale_shrinks_one_step_and_leaves_the_rates_as_they_were(make_control):
    moves = {}
    for scale in (1.0, 0.25):
        control = make_control()
        opt = _optimizer(control)
        start = [p.detach().clone() for p in control.parameters()]
        for p in control.parameters():
            p.grad = torch.ones_like(p)  # Adam's first step: every parameter moves by its rate (plus decay)
        optimizer_step(opt, scale)
        moves[scale] = torch.cat([(p.detach() - s).flatten() for p, s in zip(control.parameters(), start)])
        assert [g["lr"] for g in opt.optimizer.param_groups] == pytest.approx([1e-2, 5e-2])
        control.close()
    torch.testing.assert_close(moves[0.25], 0.25 * moves[1.0], rtol=1e-4, atol=1e-9)


def _snapshot(control, opt):
    params = [p.detach().clone() for p in control.parameters()]
    tensors, _ = state_tensors(opt)
    return params, {k: v.clone() for k, v in tensors.items()}, opt.steps, control.version


def _assert_untouched(before, control, opt):
    params, state, steps, version = before
    assert all(torch.equal(a, p) for a, p in zip(params, control.parameters()))
    now, _ = state_tensors(opt)
    assert now.keys() == state.keys() and all(torch.equal(now[k], state[k]) for k in state)
    assert (opt.steps, control.version) == (steps, version)
    assert all(p.grad is None for p in control.parameters())


def test_a_non_finite_loss_back_propagates_nothing(make_control):
    control = make_control()
    classifier = tiny_classifier()
    with torch.no_grad():
        next(classifier.model.parameters()).fill_(float("nan"))
    rollout = run_rollout(control)
    outcome = backward(rollout, [classifier_term(classifier, "a")(rollout)], 1.0)
    assert outcome.non_finite and outcome.loss != outcome.loss  # NaN
    assert all(p.grad is None for p in control.parameters())


def test_a_non_finite_gradient_or_a_discard_skips_the_step_and_leaves_the_state_alone(make_control):
    control = make_control()
    opt = _optimizer(control)
    rollout = run_rollout(control)
    backward(rollout, [classifier_term(tiny_classifier(), "a")(rollout)], 1.0)
    assert not optimizer_step(opt).skipped  # one real step, so the optimiser has state to keep
    before = _snapshot(control, opt)

    for p in control.parameters():
        p.grad = torch.ones_like(p)
    control.parameters()[0].grad[0] = float("inf")
    outcome = optimizer_step(opt)
    assert outcome.skipped and outcome.grad_norm == float("inf")
    _assert_untouched(before, control, opt)

    for p in control.parameters():
        p.grad = torch.ones_like(p)
    outcome = optimizer_step(opt, discard=True)
    count = sum(p.numel() for p in control.parameters())
    assert outcome.skipped and outcome.grad_norm == pytest.approx(count**0.5, rel=1e-5)
    _assert_untouched(before, control, opt)
    assert optimizer_step(opt, discard=True) == type(outcome)(0.0, True)  # nothing to discard: no error

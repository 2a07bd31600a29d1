import grpc
import pytest
import torch
import torch.nn.functional as F

from ctrl_worker.rpc.errors import RequestError, invalid
from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb
from ctrl_worker.ctrl.rewards import backward, parse_terms
from support import label_messages, lookup, perturb, run_rollout, tiny_classifier


@pytest.fixture
def classifiers():
    return {"classifier/1": tiny_classifier(3, seed=1), "classifier/2": tiny_classifier(2, seed=2)}


_lookup = lookup


def _terms():
    return [
        pb.RewardTerm(weight=1.0, classifier_log_prob=pb.ClassifierLogProbTerm(classifier="classifier/1", label_field="a")),
        pb.RewardTerm(weight=0.5, classifier_log_prob=pb.ClassifierLogProbTerm(classifier="classifier/2", label_field="b")),
        pb.RewardTerm(weight=-0.01, kl=pb.KlTerm()),
        pb.RewardTerm(weight=2.0, constant=pb.ConstantTerm(values=[1.0, -2.0, 0.5])),
    ]


def test_the_reward_is_the_weighted_sum_of_its_terms(make_control, classifiers):
    control = make_control()
    perturb(control)
    classifiers["classifier/2"].temperature = 1.7  # calibrated: the reward divides its logits by T
    rollout = run_rollout(control)
    x0, kl = rollout.images.detach().clamp(-1, 1), rollout.kl.detach()
    outcome = backward(rollout, parse_terms(_terms(), rollout, _lookup(classifiers)), loss_scale=1.0)

    c1, c2 = classifiers["classifier/1"], classifiers["classifier/2"]
    with torch.no_grad():
        lp1 = F.log_softmax(c1.model(x0), 1)[torch.arange(3), torch.tensor([0, 1, 2])]
        lp2 = F.log_softmax(c2.model(x0) / c2.temperature, 1)[torch.arange(3), torch.tensor([1, 0, 1])]
    expected = [lp1, lp2, kl, torch.tensor([1.0, -2.0, 0.5])]
    for got, want in zip(outcome.terms, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    reward = 1.0 * lp1 + 0.5 * lp2 - 0.01 * kl + 2.0 * expected[3]
    assert outcome.loss == pytest.approx(-float(reward.mean()), rel=1e-5)


def test_the_multi_control_reward_is_the_sum_of_the_two_classifiers_log_probabilities(make_control, classifiers):
    """CTRL with two controls learned from separate datasets: reward = log p1(a | x0) + log p2(b | x0)."""
    control = make_control()
    perturb(control)
    classifiers["classifier/1"].temperature = 0.8
    rollout = run_rollout(control)
    x0 = rollout.images.detach().clamp(-1, 1)
    messages = [
        pb.RewardTerm(weight=1.0, classifier_log_prob=pb.ClassifierLogProbTerm(classifier="classifier/1", label_field="a")),
        pb.RewardTerm(weight=1.0, classifier_log_prob=pb.ClassifierLogProbTerm(classifier="classifier/2", label_field="b")),
    ]
    outcome = backward(rollout, parse_terms(messages, rollout, _lookup(classifiers)), loss_scale=1.0)
    with torch.no_grad():
        c1, c2 = classifiers["classifier/1"], classifiers["classifier/2"]
        joint = (
            F.log_softmax(c1.model(x0) / 0.8, 1)[torch.arange(3), torch.tensor([0, 1, 2])]
            + F.log_softmax(c2.model(x0), 1)[torch.arange(3), torch.tensor([1, 0, 1])]
        )
    torch.testing.assert_close(outcome.terms[0] + outcome.terms[1], joint, rtol=1e-5, atol=1e-5)
    assert outcome.loss == pytest.approx(-float(joint.mean()), rel=1e-5)


def _capped_term(cap):
    return pb.RewardTerm(
        weight=1.0, classifier_log_prob=pb.ClassifierLogProbTerm(classifier="classifier/1", label_field="a", confidence_cap=cap)
    )


def test_a_confidence_cap_clamps_log_p_and_stops_its_gradient(make_control, classifiers):
    control = make_control()
    perturb(control)
    rollout = run_rollout(control)
    uncapped = backward(rollout, parse_terms([_capped_term(0.0)], rollout, _lookup(classifiers)), loss_scale=1.0).terms[0]
    for p in control.parameters():
        p.grad = None
    # A cap between the samples' probabilities: those above it read log(cap), the others as they were.
    cap = float(torch.tensor(float(uncapped.median().exp()), dtype=torch.float32))
    rollout = run_rollout(control)
    capped = backward(rollout, parse_terms([_capped_term(cap)], rollout, _lookup(classifiers)), loss_scale=1.0).terms[0]
    torch.testing.assert_close(capped, uncapped.clamp(max=torch.tensor(cap).log()), rtol=1e-5, atol=1e-6)
    assert (capped < uncapped - 1e-4).any() and (capped == uncapped).any()
    for p in control.parameters():
        p.grad = None
    # Every sample past the cap: the term is a constant and teaches the control nothing.
    rollout = run_rollout(control)
    backward(rollout, parse_terms([_capped_term(1e-6)], rollout, _lookup(classifiers)), loss_scale=1.0)
    grads = [p.grad for p in control.parameters() if p.grad is not None]
    assert all(float(g.abs().max()) == 0 for g in grads)


def test_loss_scale_scales_the_gradients_and_the_classifier_is_not_trained(make_control, classifiers):
    control = make_control()
    terms = _terms()[:1]

    def gradients(scale):
        rollout = run_rollout(control)
        loss = backward(rollout, parse_terms(terms, rollout, _lookup(classifiers)), loss_scale=scale).loss
        grads = [p.grad.clone() for p in control.parameters() if p.grad is not None]
        for p in control.parameters():
            p.grad = None
        return loss, grads

    (loss1, g1), (loss3, g3) = gradients(1.0), gradients(3.0)
    assert loss1 == pytest.approx(loss3)  # reported before loss_scale
    assert g1
    for a, b in zip(g1, g3):
        torch.testing.assert_close(3 * a, b, rtol=1e-4, atol=1e-7)
    model = classifiers["classifier/1"].model
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())  # restored for training
    assert not model.training


@pytest.mark.parametrize(
    "term, pattern",
    [
        (pb.RewardTerm(weight=1.0), r"^terms\[0\]: set one of classifier_log_prob, kl or constant"),
        (pb.RewardTerm(weight=float("nan"), kl=pb.KlTerm()), r"^terms\[0\]\.weight: must be finite"),
        (pb.RewardTerm(weight=1.0, constant=pb.ConstantTerm(values=[1.0])), r"^terms\[0\]\.constant\.values: expected 3 values"),
        (
            pb.RewardTerm(weight=1.0, classifier_log_prob=pb.ClassifierLogProbTerm(classifier="classifier/9", label_field="a")),
            r"^terms\[0\]\.classifier_log_prob\.classifier: no live handle",
        ),
        (
            pb.RewardTerm(weight=1.0, classifier_log_prob=pb.ClassifierLogProbTerm(classifier="classifier/1", label_field="z")),
            r"^terms\[0\]\.classifier_log_prob\.label_field: no label field 'z'; the control has a, b",
        ),
        (
            pb.RewardTerm(weight=1.0, classifier_log_prob=pb.ClassifierLogProbTerm(classifier="classifier/2", label_field="a")),
            r"^terms\[0\]\.classifier_log_prob\.label_field: sample 2 has class 2, but the classifier has 2 classes",
        ),
        (_capped_term(1.5), r"^terms\[0\]\.classifier_log_prob\.confidence_cap: must be in \(0, 1\]"),
        (_capped_term(-0.1), r"^terms\[0\]\.classifier_log_prob\.confidence_cap: must be in \(0, 1\]"),
        (_capped_term(float("nan")), r"^terms\[0\]\.classifier_log_prob\.confidence_cap: must be in \(0, 1\]"),
    ],
)
def test_terms_are_validated(make_control, classifiers, term, pattern):
    rollout = run_rollout(make_control(), grad_steps=(False,) * 4)
    with pytest.raises(RequestError, match=pattern):
        parse_terms([term], rollout, _lookup(classifiers))


def test_a_null_label_cannot_be_scored_and_images_must_fit(make_control, classifiers):
    control = make_control()
    labels = control.parse_labels(label_messages(a=[0, -1], b=[1, 1]), 2)
    rollout = run_rollout(control, labels, grad_steps=(False,) * 4)
    with pytest.raises(RequestError, match=r"label_field: sample 1 has the null label \(-1\) for 'a'"):
        parse_terms(_terms()[:1], rollout, _lookup(classifiers))
    classifiers["classifier/1"] = tiny_classifier(3, size=32)
    with pytest.raises(RequestError, match=r"classifier: takes \[3, 32, 32\] images but the rollout's samples are \[3, 16, 16\]"):
        parse_terms(_terms()[:1], run_rollout(control, grad_steps=(False,) * 4), _lookup(classifiers))
    with pytest.raises(RequestError, match=r"^terms: at least one"):
        parse_terms([], rollout, _lookup(classifiers))


def test_loss_scale_must_be_positive_and_the_rollout_current(make_control, classifiers):
    control = make_control()
    rollout = run_rollout(control)
    terms = parse_terms(_terms()[2:], rollout, _lookup(classifiers))
    for scale in (0.0, -1.0, float("inf")):
        with pytest.raises(RequestError, match=r"^loss_scale: must be positive and finite"):
            backward(rollout, terms, scale)
    control.version += 1  # as an optimizer step does
    with pytest.raises(RequestError, match=r"^rollout: the control's parameters changed after this rollout") as info:
        backward(rollout, terms, 1.0)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION

import math

import pytest
import torch

from ctrl_worker.classifiers.classifier import create_classifier, frozen, log_prob, validate_config
from ctrl_worker.rpc.errors import RequestError
from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb
from ctrl_worker.baselines.guidance import ClassifierFree, ClassifierGradient, GuidedDenoiser, parse_terms
from support import TIMESTEPS, label_messages, lookup, perturb, sample, tiny_classifier

N = 3


def noise_aware_classifier(num_classes: int = 3, seed: int = 0):
    config = validate_config([3, 16, 16], num_classes, "noise-aware-resnet", 4, 1e-3, 0.0)
    return create_classifier(config, seed, torch.device("cpu"))


def reconstruction(scale, classifier=None, targets=(0, 1, 2)):
    return ClassifierGradient(scale, classifier or tiny_classifier(), torch.tensor(targets), on_noisy_sample=False)


def noise_aware(scale, classifier=None, targets=(2, 0, 1)):
    return ClassifierGradient(scale, classifier or noise_aware_classifier(), torch.tensor(targets), on_noisy_sample=True)


def classifier_free(scale, control, null_unconditional=False):
    labels = control.parse_labels(label_messages(a=[0, 1, 2], b=[1, 0, 1]), N)
    return ClassifierFree(scale, control, labels, null_unconditional)


def guided(backbone, terms, seed=5, kl=False):
    from ctrl_worker.diffusion.sampler import Trajectory

    trajectory = Trajectory(backbone, N, seed, predict=GuidedDenoiser(backbone, terms), compute_kl=kl)
    for i, t in enumerate(TIMESTEPS):
        trajectory.step(t, TIMESTEPS[i + 1] if i + 1 < len(TIMESTEPS) else -1, 1.0)
    return trajectory


@pytest.mark.parametrize("kind", ["reconstruction", "noise_aware", "classifier_free", "all three"])
def test_every_guidance_at_scale_zero_gives_exactly_the_pretrained_samplers_images(backbone, make_control, kind):
    plain = sample(backbone, num_samples=N, seed=5).x
    control = make_control()
    perturb(control)  # a trained control: scale 0 must still leave it out
    terms = {
        "reconstruction": [reconstruction(0.0)],
        "noise_aware": [noise_aware(0.0)],
        "classifier_free": [classifier_free(0.0, control)],
        "all three": [classifier_free(0.0, control), reconstruction(0.0), noise_aware(0.0)],
    }[kind]
    trajectory = guided(backbone, terms, kl=True)
    assert torch.equal(trajectory.x, plain)
    assert trajectory.kl.tolist() == [0.0] * N


@pytest.mark.parametrize("kind", ["reconstruction", "noise_aware", "classifier_free"])
def test_a_positive_scale_moves_the_samples_and_has_a_kl(backbone, make_control, kind):
    plain = sample(backbone, num_samples=N, seed=5).x
    control = make_control()
    perturb(control)
    term = {"reconstruction": reconstruction(50.0), "noise_aware": noise_aware(50.0), "classifier_free": classifier_free(2.0, control)}[kind]
    trajectory = guided(backbone, [term], kl=True)
    assert not torch.equal(trajectory.x, plain)
    assert (trajectory.kl > 0).all()


@pytest.mark.parametrize("null_unconditional", [False, True])
def test_the_reference_for_the_kl_is_the_pretrained_prediction(make_control, null_unconditional):
    control = make_control()
    perturb(control)
    denoiser = GuidedDenoiser(control.backbone, [classifier_free(1.0, control, null_unconditional), reconstruction(5.0)])
    x = torch.randn(N, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, reference = denoiser(x, 600, True, 2)
        assert denoiser(x, 600, False, 0)[1] is None
        direct = control.backbone.predict_eps(x, 600)
    torch.testing.assert_close(reference, direct)


def test_reconstruction_guidance_follows_the_classifier_gradient_through_the_denoised_estimate(backbone):
    classifier = tiny_classifier()
    classifier.temperature = 1.5
    scale, t = 3.0, 600
    alpha = backbone.alpha_cumprod(t)
    x = torch.randn(N, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    eps, _ = GuidedDenoiser(backbone, [reconstruction(scale, classifier)])(x, t, False, 0)
    x_var = x.clone().requires_grad_(True)
    eps_pre = backbone.predict_eps(x_var, t)
    x0_hat = (x_var - math.sqrt(1 - alpha) * eps_pre) / math.sqrt(alpha)
    with frozen(classifier):
        value = log_prob(classifier, x0_hat, torch.tensor([0, 1, 2])).sum()
    (gradient,) = torch.autograd.grad(value, x_var)
    expected = eps_pre.detach() - math.sqrt(1 - alpha) * scale * gradient
    torch.testing.assert_close(eps, expected)


def test_classifier_guidance_uses_the_noise_aware_classifier_at_the_steps_timestep(backbone):
    classifier = noise_aware_classifier()
    scale, t = 2.0, 300
    x = torch.randn(N, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    eps, _ = GuidedDenoiser(backbone, [noise_aware(scale, classifier)])(x, t, False, 0)
    x_var = x.clone().requires_grad_(True)
    with frozen(classifier):
        value = log_prob(classifier, x_var, torch.tensor([2, 0, 1]), torch.full((N,), t)).sum()
    (gradient,) = torch.autograd.grad(value, x_var)
    with torch.no_grad():
        expected = backbone.predict_eps(x, t) - math.sqrt(1 - backbone.alpha_cumprod(t)) * scale * gradient
    torch.testing.assert_close(eps, expected)


@pytest.mark.parametrize("null_unconditional", [False, True])
def test_classifier_free_guidance_extrapolates_from_the_unconditional_branch(make_control, null_unconditional):
    control = make_control()
    perturb(control)
    term = classifier_free(2.5, control, null_unconditional)
    x = torch.randn(N, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        eps, _ = GuidedDenoiser(control.backbone, [term])(x, 500, False, 2)
        conditional = control.eps(x, 500, term.labels)
        null = control.parse_labels(label_messages(a=[-1] * N, b=[-1] * N), N)
        unconditional = control.eps(x, 500, null if null_unconditional else None)
    torch.testing.assert_close(eps, unconditional + 2.5 * (conditional - unconditional))


# -- parsing ---------------------------------------------------------------------------------------


def _parse(backbone, messages, controls=None, classifiers=None, n=N):
    return parse_terms(messages, backbone, n, lookup(controls or {}), lookup(classifiers or {}))


def _gradient_message(kind, classifier="classifier/1", targets=(0, 1, 2), scale=1.0):
    return pb.GuidanceTerm(scale=scale, **{kind: pb.ClassifierGradientGuidance(classifier=classifier, targets=list(targets))})


def test_terms_parse_into_their_kinds(backbone, make_control):
    control = make_control()
    classifiers = {"classifier/1": tiny_classifier(), "classifier/2": noise_aware_classifier()}
    messages = [
        pb.GuidanceTerm(
            scale=1.5,
            classifier_free=pb.ClassifierFreeGuidance(
                control="control/1", labels=label_messages(a=[0, 1, 2], b=[1, 1, 0]), unconditional=pb.UNCONDITIONAL_NULL_LABEL
            ),
        ),
        _gradient_message("reconstruction"),
        _gradient_message("noise_aware_classifier", "classifier/2", scale=0.0),
    ]
    cfg, recon, noisy = _parse(backbone, messages, {"control/1": control}, classifiers)
    assert isinstance(cfg, ClassifierFree) and cfg.scale == 1.5 and cfg.null_unconditional
    assert cfg.labels.values["b"].tolist() == [1, 1, 0]
    assert isinstance(recon, ClassifierGradient) and not recon.on_noisy_sample and recon.targets.tolist() == [0, 1, 2]
    assert isinstance(noisy, ClassifierGradient) and noisy.on_noisy_sample and noisy.scale == 0.0


@pytest.mark.parametrize(
    "message, field",
    [
        (_gradient_message("reconstruction", scale=-1.0), "terms[0].scale"),
        (_gradient_message("reconstruction", scale=float("nan")), "terms[0].scale"),
        (_gradient_message("reconstruction", targets=(0, 1)), "terms[0].reconstruction.targets"),
        (_gradient_message("reconstruction", targets=(0, 1, 3)), "terms[0].reconstruction.targets[2]"),
        (_gradient_message("reconstruction", classifier="classifier/9"), "terms[0].reconstruction.classifier"),
        (_gradient_message("noise_aware_classifier"), "terms[0].noise_aware_classifier.classifier"),
        (pb.GuidanceTerm(scale=1.0), "terms[0]"),
    ],
)
def test_bad_terms_are_refused_naming_the_field(backbone, message, field):
    with pytest.raises(RequestError) as error:
        _parse(backbone, [message], classifiers={"classifier/1": tiny_classifier()})
    assert error.value.field == field


def test_classifier_free_terms_need_classes_one_control_of_this_backbone(backbone, make_control, tiny_backbone):
    control = make_control()
    cfg = pb.GuidanceTerm(scale=1.0, classifier_free=pb.ClassifierFreeGuidance(control="control/1", labels=label_messages(a=[0, 1, 2], b=[1, 1, 0])))
    null = pb.GuidanceTerm(scale=1.0, classifier_free=pb.ClassifierFreeGuidance(control="control/1", labels=label_messages(a=[0, -1, 2], b=[1, 1, 0])))
    controls = {"control/1": control}
    for messages, field in [([cfg, cfg], "terms[1].classifier_free"), ([null], "terms[0].classifier_free.labels")]:
        with pytest.raises(RequestError) as error:
            _parse(backbone, messages, controls)
        assert error.value.field == field
    with pytest.raises(RequestError) as error:
        _parse(tiny_backbone, [cfg], controls)
    assert error.value.field == "terms[0].classifier_free.control"


def test_a_classifier_of_another_image_shape_is_refused(backbone):
    config = validate_config([3, 8, 8], 3, "convnet", 4, 1e-3, 0.0)
    small = create_classifier(config, 0, torch.device("cpu"))
    with pytest.raises(RequestError) as error:
        _parse(backbone, [_gradient_message("reconstruction")], classifiers={"classifier/1": small})
    assert error.value.field == "terms[0].reconstruction.classifier"


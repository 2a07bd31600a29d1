"""Latent text-to-image backbones (the Stable Diffusion layout), built tiny from configs and loaded
through the same path as a downloaded checkpoint."""

import grpc
import pytest
import torch

from ctrl_worker.diffusion.backbones import load_backbone
from ctrl_worker.diffusion.branches import StepModel
from ctrl_worker.ctrl.checkpoints import save_control
from ctrl_worker.diffusion.conditioning import DEFAULT_GUIDANCE_SCALE, parse_condition
from ctrl_worker.ctrl.control import Control, LabelField, LoraSpec
from ctrl_worker.rpc.errors import RequestError
from ctrl_worker.ctrl.rewards import backward
from ctrl_worker.tools.testing import make_text_to_image
from support import CLOSE_DECODED, TIMESTEPS, assert_zero_kl, label_messages, perturb, run_rollout, sample, tiny_classifier

CPU = torch.device("cpu")
ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")
PROMPTS = ["a red square", "a blue circle", ""]


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    return make_text_to_image(tmp_path_factory.mktemp("tiny-sd"), "tiny", seed=0)


@pytest.fixture
def sd(pipeline_dir):
    return load_backbone(str(pipeline_dir), "", torch.float32, CPU)


def make_control(backbone, seed=0):
    return Control(backbone, [LabelField("y", 4)], LoraSpec(4, 4.0, ATTENTION), seed)


def labels_of(control, values=(0, 1, 3)):
    return control.parse_labels(label_messages(y=list(values)), len(values))


def condition(backbone, scale=None, prompts=PROMPTS):
    return parse_condition(backbone, prompts, scale, len(prompts))


def test_a_pipeline_folder_loads_as_a_latent_backbone(sd):
    assert sd.model_class == "UNet2DConditionModel"
    assert sd.sample_shape == (4, 8, 8) and sd.image_shape == (3, 16, 16)
    assert sd.text_to_image is not None and sd.text_to_image.scaling_factor == pytest.approx(0.18215)
    trajectory = sample(sd, condition=condition(sd))
    images = sd.to_images(trajectory.x)
    assert images.shape == (3, 3, 16, 16) and torch.isfinite(images).all()


def test_prompts_and_guidance_are_validated(sd, tmp_path):
    assert condition(sd).guidance_scale == DEFAULT_GUIDANCE_SCALE
    with pytest.raises(RequestError, match=r"^text.prompts: give one prompt for all samples or one per sample \(3\), got 2"):
        parse_condition(sd, ["a", "b"], None, 3)
    with pytest.raises(RequestError, match=r"^text.guidance_scale: must be in \[0, 100"):
        parse_condition(sd, ["a"], -1.0, 3)
    pixel = load_backbone(str(__import__("ctrl_worker.tools.testing").tools.testing.make_tiny_backbone(tmp_path / "px")), "", torch.float32, CPU)
    with pytest.raises(RequestError, match="^text.prompts: UNet2DModel is an unconditional pixel-space model"):
        parse_condition(pixel, ["a cat"], None, 1)
    assert parse_condition(pixel, [], None, 1) is None


def test_guidance_combines_the_two_branches(sd):
    cond = condition(sd, scale=3.0)
    x = torch.randn(3, *sd.sample_shape)
    eps, _ = StepModel(sd, condition=cond).predict(x, 500, False)
    with torch.no_grad():
        uncond = sd.predict_eps(x, 500, cond.empty_embeds)
        conditional = sd.predict_eps(x, 500, cond.prompt_embeds)
    torch.testing.assert_close(eps, uncond + 3.0 * (conditional - uncond), rtol=0, atol=1e-5)
    alone, _ = StepModel(sd, condition=condition(sd, scale=1.0)).predict(x, 500, False)
    torch.testing.assert_close(alone, conditional, rtol=0, atol=1e-5)


def test_a_fresh_control_is_its_backbone_with_zero_kl(sd):
    control = make_control(sd)
    cond = condition(sd)
    plain = sample(sd, condition=cond, seed=3).x  # run_rollout's seed
    result = run_rollout(control, labels_of(control), condition=cond, checkpointing=False)
    assert_zero_kl(result.kl)
    torch.testing.assert_close(result.images.detach(), sd.to_images(plain), **CLOSE_DECODED)


def test_fused_reference_rows_are_exactly_the_pretrained_model(sd):
    control = make_control(sd)
    perturb(control, scale=0.2)
    cond = condition(sd)
    x = torch.randn(3, *sd.sample_shape)
    eps, eps_ref = StepModel(sd, control, labels_of(control), cond).predict(x, 700, True)
    pretrained, _ = StepModel(sd, condition=cond).predict(x, 700, False)
    torch.testing.assert_close(eps_ref, pretrained, rtol=0, atol=1e-5)
    assert (eps - eps_ref).abs().max() > 1e-3  # the adapters do act on the model rows


def test_one_fused_call_equals_the_official_four_calls(sd):
    """Same KL, images and gradients whether the four branches share one UNet call or not."""
    control = make_control(sd)
    perturb(control, scale=0.2)
    cond = condition(sd)
    results = {}
    for fused in (True, False):
        control.backbone.unet.zero_grad(set_to_none=True)
        for p in control.parameters():
            p.grad = None
        result = run_rollout(control, labels_of(control), condition=cond, fused=fused)
        classifier = tiny_classifier(num_classes=4)
        from ctrl_worker.ctrl.rewards import ClassifierLogProb, Kl, Term

        backward(result, [Term(1.0, ClassifierLogProb(classifier, result.labels.values["y"])), Term(-0.5, Kl())], 1.0)
        results[fused] = (result, [p.grad.clone() for p in control.parameters()])
    (fused, fused_grads), (separate, separate_grads) = results[True], results[False]
    assert fused.unet_calls == len(TIMESTEPS) and separate.unet_calls > 3 * len(TIMESTEPS)
    torch.testing.assert_close(fused.kl_per_step, separate.kl_per_step, rtol=1e-4, atol=1e-6)
    # Gradients are long float32 sums whose order depends on the batch layout: entries near zero
    # differ by rounding relative to the largest terms (2e-5 seen on an AMD EPYC), so the absolute
    # tolerance scales with the gradient's size.
    for a, b in zip(fused_grads, separate_grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3 * float(b.abs().max()))
    assert any(g.abs().sum() > 0 for g in fused_grads)


def test_exported_lora_loads_into_a_diffusers_pipeline(sd, pipeline_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    control = make_control(sd)
    perturb(control, scale=0.1)
    with torch.no_grad():
        control.embeddings["y"].weight[-1].zero_()  # the null row, which training never moves
    save_control(control, None, str(tmp_path / "control"), overwrite=False)
    pipe = StableDiffusionPipeline.from_pretrained(pipeline_dir, use_safetensors=True)
    pipe.load_lora_weights(str(tmp_path / "control"), adapter_name="ctrl")
    cond = condition(sd)
    x = torch.randn(3, *sd.sample_shape)
    t = torch.full((3,), 400)
    with torch.no_grad():
        theirs = pipe.unet(x, t, encoder_hidden_states=cond.prompt_embeds).sample
        ours = control.eps(x, 400, labels_of(control, (-1, -1, -1)), cond.prompt_embeds)  # null label: LoRA alone
        plain = sd.predict_eps(x, 400, cond.prompt_embeds)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
    assert (theirs - plain).abs().max() > 1e-4  # the LoRA was really applied

    # The label embedding as diffusers' class embedding (README): the same model as the control's.
    from safetensors.torch import load_file

    table = load_file(str(tmp_path / "control" / "label_embeddings.safetensors"))["y"]
    pipe.unet.class_embedding = torch.nn.Embedding.from_pretrained(table, freeze=True)
    y = torch.tensor([0, 2, 3])
    with torch.no_grad():
        theirs = pipe.unet(x, t, encoder_hidden_states=cond.prompt_embeds, class_labels=y).sample
        ours = control.eps(x, 400, labels_of(control, (0, 2, 3)), cond.prompt_embeds)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)


def test_autocast_must_suit_the_device(pipeline_dir):
    with pytest.raises(RequestError, match="^autocast: ") as info:
        load_backbone(str(pipeline_dir), "", torch.float32, CPU, autocast=torch.float16)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    bf16 = load_backbone(str(pipeline_dir), "", torch.float32, CPU, autocast=torch.bfloat16)
    eps, _ = StepModel(bf16, condition=condition(bf16)).predict(torch.randn(3, 4, 8, 8), 500, False)
    assert eps.dtype == torch.float32 and torch.isfinite(eps).all()


def test_a_missing_part_or_pickled_weights_are_refused(pipeline_dir, tmp_path):
    import shutil

    folder = tmp_path / "no-safetensors"
    shutil.copytree(pipeline_dir, folder)
    for f in (folder / "vae").glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(RequestError, match=r"^source: .*vae has no .safetensors weights; pickled .bin") as info:
        load_backbone(str(folder), "", torch.float32, CPU)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_a_hub_id_missing_from_the_cache_offline_is_not_found(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(RequestError, match=r"^source: model 'runwayml/stable-diffusion-v1-5': HF_HUB_OFFLINE is set") as info:
        load_backbone("runwayml/stable-diffusion-v1-5", "", torch.float32, CPU)
    assert info.value.code == grpc.StatusCode.NOT_FOUND

import pytest
import torch
from diffusers import DDIMScheduler

from ctrl_worker.rpc.errors import RequestError
from ctrl_worker.diffusion.sampler import Trajectory, Transition, ddim_step, transition_kl
from support import TIMESTEPS, sample


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_matches_diffusers(tiny_backbone_dir, tiny_backbone, eta):
    scheduler = DDIMScheduler.from_pretrained(tiny_backbone_dir, subfolder="scheduler")
    scheduler.set_timesteps(10)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 16, 16)
    for i, t in enumerate(scheduler.timesteps.tolist()):
        prev = scheduler.timesteps[i + 1].item() if i + 1 < len(scheduler.timesteps) else -1
        eps = torch.randn_like(x)
        noise = torch.randn_like(x)
        expected = scheduler.step(eps, t, x, eta=eta, variance_noise=noise).prev_sample
        ours = ddim_step(
            x, eps, tiny_backbone.alpha_cumprod(t), tiny_backbone.alpha_cumprod(prev), eta, noise, tiny_backbone.clip_range
        )
        torch.testing.assert_close(ours.sample, expected, rtol=1e-5, atol=1e-5)
        x = expected


def test_images_do_not_depend_on_batch_size(tiny_backbone):
    timesteps = [900, 600, 300, 0]

    def run(batch_size):
        trajectory = Trajectory(tiny_backbone, 5, seed=7)
        for i, t in enumerate(timesteps):
            trajectory.step(t, timesteps[i + 1] if i + 1 < len(timesteps) else -1, 1.0, batch_size)
        return trajectory.x

    # Convolutions may pick other kernels for other batch sizes: equal up to float rounding.
    torch.testing.assert_close(run(0), run(2), rtol=0, atol=1e-4)


def test_trajectory_refuses_out_of_order_and_finished_steps(tiny_backbone):
    trajectory = Trajectory(tiny_backbone, 1, seed=0)
    trajectory.step(500, 100, 0.0)
    with pytest.raises(RequestError, match="timestep: must be below the previous step's timestep 500"):
        trajectory.step(600, 100, 0.0)
    with pytest.raises(RequestError, match="prev_timestep"):
        trajectory.step(100, 100, 0.0)
    with pytest.raises(RequestError, match="eta"):
        trajectory.step(100, 50, 1.5)
    trajectory.step(100, -1, 0.0)
    with pytest.raises(RequestError, match="already reached the clean sample"):
        trajectory.step(50, -1, 0.0)


def test_transition_kl_is_the_closed_form_for_equal_isotropic_gaussians():
    torch.manual_seed(0)
    mean, mean_ref, std = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2), 0.37
    kl = transition_kl(Transition(mean, std, mean, mean), Transition(mean_ref, std, mean_ref, mean_ref))
    p = torch.distributions.Independent(torch.distributions.Normal(mean.flatten(1), std), 1)
    q = torch.distributions.Independent(torch.distributions.Normal(mean_ref.flatten(1), std), 1)
    torch.testing.assert_close(kl, torch.distributions.kl_divergence(p, q))
    deterministic = transition_kl(Transition(mean, 0.0, mean, mean), Transition(mean_ref, 0.0, mean_ref, mean_ref))
    assert deterministic.tolist() == [0.0] * 4


def test_a_trajectory_against_itself_has_zero_kl_and_unchanged_images(tiny_backbone):
    from ctrl_worker.diffusion.sampler import Trajectory

    plain = sample(tiny_backbone)
    def self_reference(x, t, with_reference, batch_size):
        return tiny_backbone.predict_eps(x, t), tiny_backbone.predict_eps(x, t)

    with_kl = Trajectory(tiny_backbone, 3, 5, predict=self_reference, compute_kl=True)
    for i, t in enumerate(TIMESTEPS):
        with_kl.step(t, TIMESTEPS[i + 1] if i + 1 < len(TIMESTEPS) else -1, 1.0)
    assert torch.equal(plain.x, with_kl.x)
    assert with_kl.kl.tolist() == [0.0, 0.0, 0.0]

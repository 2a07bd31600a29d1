"""Data parallel: shards of a batch, the summed-gradient optimiser step across two gloo ranks, the
checks of shard fields and of torchrun's environment, and what GetInfo reports."""

from __future__ import annotations

import os
import socket

import grpc
import pytest
import torch
import torch.multiprocessing as mp

from ctrl_worker import __main__ as cli
from ctrl_worker.ctrl import data_parallel
from ctrl_worker.ctrl.optim import create_optimizer, optimizer_step
from ctrl_worker.ctrl.rewards import Kl, Term, backward
from ctrl_worker.ctrl.rollout import rollout
from ctrl_worker.diffusion.branches import StepModel
from ctrl_worker.diffusion.sampler import Shard, Trajectory, validate_shard
from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb
from ctrl_worker.rpc.errors import RequestError
from ctrl_worker.rpc.service import Limits, WorkerService
from ctrl_worker.rpc.telemetry import Telemetry
from ctrl_worker.rpc.tensors import from_proto
from support import CLOSE, TIMESTEPS, call, classifier_term, label_messages, perturb, refused, tiny_classifier

# One batch of 5 split into the shards [0, 3) and [3, 5): unequal shares, as a real split can be.
TOTAL = 5
SHARDS = [(0, 3), (3, 2)]  # (offset, num_samples) of rank 0 and rank 1
LABELS = {"a": [0, 1, 2, 0, 1], "b": [1, 0, 1, 0, 1]}
GROUPS = [pb.ParamGroup(name="lora", learning_rate=1e-2), pb.ParamGroup(name="embedding", learning_rate=5e-2, weight_decay=0.1)]
TRAIN_STEPS = 3

# Test b's bound on |data-parallel parameters - one-process parameters| after TRAIN_STEPS steps.
# Not bit-exact: one process sums the per-sample gradients in one backward pass over 5 rows, the
# ranks sum 3 and 2 rows and then add the two partial sums, and the UNet runs batches of 3 and 2
# instead of 5 (other kernels' blocking), whose ~1e-6 differences the sampler amplifies (see
# support.py): the gradients differ by ~1e-5 of their largest entry (2e-6 of 0.18 measured at the
# second step). Adam divides each entry by its own RMS, so an entry whose gradient is itself near
# zero (6.7e-8 against 6.1e-8 measured) moves by a visibly different fraction of the learning rate:
# measured 1.3e-4 (the largest difference over all parameters after 3 steps; 3.9e-6 after the
# first), against moves of up to 0.13. The bound leaves a margin of ~8x for other CPUs'
# kernels and stays 5x below one LoRA step's learning rate (1e-2), which a rank stepping on its
# own gradient would differ by; the gradient norms, which Adam's scale invariance cannot hide, are
# compared too.
DP_ATOL = 1e-3


def _rows(values: dict[str, list[int]], offset: int, n: int) -> dict[str, list[int]]:
    return {name: v[offset : offset + n] for name, v in values.items()}


def _new_control(backbone):
    from ctrl_worker.ctrl.control import Control, LabelField, LoraSpec

    fields = [LabelField("a", 3), LabelField("b", 2)]
    return Control(backbone, fields, LoraSpec(4, 4.0, ("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2")), 0)


def _train(backbone_dir, shard: Shard | None, n: int, labels: dict[str, list[int]], loss_scale: float):
    """TRAIN_STEPS steps of rollout + backward + optimizer_step on a fresh tiny backbone and
    control; returns the trainable parameters after each step and the step's checksums."""
    from ctrl_worker.diffusion.backbones import load_backbone

    backbone = load_backbone(str(backbone_dir), "", torch.float32, torch.device("cpu"))
    control = _new_control(backbone)
    opt = create_optimizer(control, GROUPS, 0.0, 0.0, 0.0, 1.0)
    classifier = tiny_classifier()
    parsed = control.parse_labels(label_messages(**labels), n)
    snapshots, checksums, norms = [], [], []
    for step in range(TRAIN_STEPS):
        model = StepModel(backbone, control, parsed, None, fused=True, checkpointing=False)
        result = rollout(model, n, TIMESTEPS, 1.0, 10 + step, [False, True, False, True], shard=shard)
        terms = [classifier_term(classifier, "a")(result), Term(-0.1, Kl())]
        backward(result, terms, loss_scale)
        outcome = optimizer_step(opt, checksum=True)
        assert not outcome.skipped
        checksums.append(outcome.parameter_checksum)
        norms.append(outcome.grad_norm)
        snapshots.append([p.detach().clone() for p in opt.params()])
    return snapshots, checksums, norms


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, backbone_dir: str, out_dir: str) -> None:
    """One spawned rank: join via torchrun's variables, train on its shard, save what it saw."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    group = data_parallel.init_from_env(torch.device("cpu"), timeout_s=120)
    try:
        assert group == data_parallel.DistributedInfo(rank, world, "gloo", rank)
        assert data_parallel.world_size() == world
        offset, n = SHARDS[rank]
        snapshots, checksums, norms = _train(backbone_dir, Shard(offset, TOTAL), n, _rows(LABELS, offset, n), n / TOTAL)
        # No gradient on any rank: every rank raises the precondition error after the collective
        # (none is left waiting in it).
        from ctrl_worker.diffusion.backbones import load_backbone

        control = _new_control(load_backbone(backbone_dir, "", torch.float32, torch.device("cpu")))
        try:
            optimizer_step(create_optimizer(control, GROUPS, 0.0, 0.0, 0.0, 1.0))
            no_gradient = ""
        except RequestError as error:
            no_gradient = f"{error.code.name} {error}"
        torch.save({"snapshots": snapshots, "checksums": checksums, "norms": norms, "no_gradient": no_gradient}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        data_parallel.close()


# -- a. shards of one batch ----------------------------------------------------------------------


def test_shards_hold_the_batch_rows_noise_and_samples(backbone):
    from ctrl_worker.ctrl.control import Control, LabelField, LoraSpec

    seed = 7
    whole = Trajectory(backbone, TOTAL, seed)
    parts = [Trajectory(backbone, n, seed, shard=Shard(offset, TOTAL)) for offset, n in SHARDS]
    # The draws are the batch's, row for row (bit-exact): x_T, then the next step's noise.
    assert torch.equal(torch.cat([p.x for p in parts]), whole.x)
    assert torch.equal(torch.cat([p._draw_noise() for p in parts]), whole._draw_noise())

    # The samples, with a trained control, its labels cut like the batch, and the KL. The UNet
    # runs batches of 3 and 2 instead of 5: float32 rounding, hence support.CLOSE (1e-4), not equality.
    control = Control(backbone, [LabelField("a", 3), LabelField("b", 2)], LoraSpec(2, 2.0, ("to_q", "to_v", "conv1")), 0)
    perturb(control)

    def run(n: int, shard: Shard | None, labels):
        model = StepModel(backbone, control, control.parse_labels(label_messages(**labels), n))
        trajectory = Trajectory(backbone, n, seed, predict=model.predict, compute_kl=True, shard=shard)
        for i, t in enumerate(TIMESTEPS):
            trajectory.step(t, TIMESTEPS[i + 1] if i + 1 < len(TIMESTEPS) else -1, 1.0)
        return trajectory

    whole = run(TOTAL, None, LABELS)
    parts = [run(n, Shard(offset, TOTAL), _rows(LABELS, offset, n)) for offset, n in SHARDS]
    torch.testing.assert_close(torch.cat([p.x for p in parts]), whole.x, **CLOSE)
    torch.testing.assert_close(torch.cat([p.kl for p in parts]), whole.kl, **CLOSE)
    assert (whole.kl > 0).all()  # a real KL, so that the comparison means something


def test_the_whole_batch_as_its_one_shard_draws_as_without_sharding(backbone):
    assert validate_shard(0, 4, 4, 64) is None
    assert validate_shard(0, 0, 4, 64) is None
    assert validate_shard(1, 5, 4, 64) == Shard(1, 5)


# -- b. two gloo ranks against one process ---------------------------------------------------------


def test_two_ranks_train_like_one_process_on_the_whole_batch(tiny_backbone_dir, tmp_path):
    mp.spawn(_rank_main, args=(2, _free_port(), str(tiny_backbone_dir), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    reference, _, reference_norms = _train(tiny_backbone_dir, None, TOTAL, LABELS, 1.0)

    # The all-reduce gives every rank the same sums: the same parameters to the bit.
    assert ranks[0]["checksums"] == ranks[1]["checksums"]
    assert len(set(ranks[0]["checksums"])) == TRAIN_STEPS  # every step changed them
    for a, b in zip(ranks[0]["snapshots"][-1], ranks[1]["snapshots"][-1]):
        assert torch.equal(a, b)
    assert ranks[0]["norms"] == ranks[1]["norms"]
    # The summed gradients are the whole batch's (the loss scales make the sum a mean), not one
    # shard's nor twice the mean: their norms agree before Adam normalises them.
    assert ranks[0]["norms"] == pytest.approx(reference_norms, rel=1e-4)
    for r in ranks:
        assert r["no_gradient"].startswith("FAILED_PRECONDITION optimizer: no gradient was accumulated"), r["no_gradient"]

    initial = [p.detach().clone() for p in _new_control_params(tiny_backbone_dir)]
    final, expected = ranks[0]["snapshots"][-1], reference[-1]
    difference = max(float((a - b).abs().max()) for a, b in zip(final, expected))
    moved = max(float((a - b).abs().max()) for a, b in zip(expected, initial))
    print(f"data parallel vs one process: max |difference| {difference:.3g}, max move {moved:.3g}")
    assert moved > 50 * DP_ATOL  # the steps moved the parameters far more than the bound
    assert difference <= DP_ATOL, f"ranks and one process differ by {difference:.3g} > {DP_ATOL}"


def _new_control_params(backbone_dir):
    from ctrl_worker.diffusion.backbones import load_backbone

    control = _new_control(load_backbone(str(backbone_dir), "", torch.float32, torch.device("cpu")))
    return create_optimizer(control, GROUPS, 0.0, 0.0, 0.0, 1.0).params()


def test_a_lone_worker_reduces_nothing_and_its_checksum_follows_the_bytes():
    assert data_parallel.world_size() == 1 and data_parallel.info() == data_parallel.DistributedInfo()
    a, b = torch.zeros(3), torch.ones(2, 2)
    checksum = data_parallel.parameter_checksum([a, b])
    assert checksum == data_parallel.parameter_checksum([a.clone(), b.clone()]) and len(checksum) == 64
    assert checksum != data_parallel.parameter_checksum([b, a])
    b[0, 0] = 1 + 1e-7
    assert checksum != data_parallel.parameter_checksum([a, b])


# -- c. validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset, total, pattern",
    [
        (1, 0, r"^shard_offset: needs shard_total \(0 means no sharding\), got offset 1"),
        (0, 65, r"^shard_total: at most 64 samples per batch"),
        (0, 2, r"^shard_total: must be at least num_samples \(3\), got 2"),
        (3, 5, r"^shard_offset: rows \[3, 6\) must lie within the batch of shard_total=5 samples"),
    ],
)
def test_shard_fields_are_checked(offset, total, pattern):
    with pytest.raises(RequestError, match=pattern) as info:
        validate_shard(offset, total, 3, 64)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def service():
    return WorkerService(torch.device("cpu"), Limits(64 << 20, 64), Telemetry(None, "test"))


def test_sample_and_rollout_refuse_bad_shards_naming_the_field(service, tiny_backbone_dir):
    backbone = call(service.LoadBackbone, pb.LoadBackboneRequest(source=str(tiny_backbone_dir))).handle
    control = call(service.AddControl, pb.AddControlRequest(
        backbone=backbone, fields=[pb.LabelField(name="a", num_classes=3)], lora_rank=2, lora_alpha=2,
        lora_target_modules=["to_q"], seed=0,
    )).handle
    sample = pb.SampleRequest(model=backbone, num_samples=2, timesteps=TIMESTEPS, eta=1, seed=4, shard_offset=3, shard_total=4)
    code, details = refused(service.Sample, sample)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("shard_offset: rows [3, 5)"), details
    roll = pb.RolloutRequest(
        control=control, num_samples=2, labels=[pb.LabelValues(field="a", values=[0, 1])], timesteps=TIMESTEPS, eta=1,
        seed=4, grad_steps=[False] * len(TIMESTEPS), shard_offset=0, shard_total=100,
    )
    code, details = refused(service.Rollout, roll)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("shard_total: at most 64 samples"), details

    # A good shard through the servicer: the batch's rows [1, 3) of 4.
    def images(**shard):
        request = pb.SampleRequest(model=backbone, num_samples=shard.pop("n"), timesteps=TIMESTEPS, eta=1, seed=4, **shard)
        events = call(service.Sample, request)
        return torch.cat([from_proto(e.images.images, "images") for e in events if e.HasField("images")]).int()

    whole, part = images(n=4), images(n=2, shard_offset=1, shard_total=4)
    # uint8 images after float32 rounding of other batch sizes: at most one level apart.
    assert part.shape[0] == 2 and (whole[1:3] - part).abs().max() <= 1


@pytest.mark.parametrize(
    "env, pattern",
    [
        (dict(RANK="0", MASTER_ADDR="h", MASTER_PORT="1"), r"WORLD_SIZE is not set \(expected an integer"),
        (dict(WORLD_SIZE="two", RANK="0", MASTER_ADDR="h", MASTER_PORT="1"), r"WORLD_SIZE must be an integer, got 'two'"),
        (dict(WORLD_SIZE="2", RANK="2", MASTER_ADDR="h", MASTER_PORT="1"), r"RANK must satisfy 0 <= RANK < WORLD_SIZE=2, got 2"),
        (dict(WORLD_SIZE="2", RANK="-1", MASTER_ADDR="h", MASTER_PORT="1"), r"RANK must satisfy 0 <= RANK < WORLD_SIZE=2, got -1"),
        (dict(WORLD_SIZE="2", RANK="1", MASTER_PORT="1"), r"MASTER_ADDR is not set"),
        (dict(WORLD_SIZE="2", RANK="1", MASTER_ADDR="h", MASTER_PORT="70000"), r"MASTER_PORT must be a port in 1..65535, got 70000"),
        (dict(WORLD_SIZE="2", RANK="1", MASTER_ADDR="h"), r"MASTER_PORT is not set"),
        (dict(WORLD_SIZE="2", RANK="1", MASTER_ADDR="h", MASTER_PORT="1", LOCAL_RANK="x"), r"LOCAL_RANK must be an integer"),
    ],
)
def test_torchrun_variables_are_checked(env, pattern):
    with pytest.raises(SystemExit, match=r"^--distributed: environment variable " + pattern):
        data_parallel.read_env(env)


def test_the_distributed_flags(monkeypatch, capsys):
    ok = data_parallel.read_env(dict(WORLD_SIZE="4", RANK="3", MASTER_ADDR="10.0.0.1", MASTER_PORT="29500"))
    assert (ok.rank, ok.world_size, ok.local_rank, ok.master_port) == (3, 4, 0, 29500)
    # `--distributed` reads the environment before anything starts; a bad one stops the worker.
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit, match=r"^--distributed: environment variable RANK is not set"):
        cli.main(["--distributed", "--device", "cpu"])
    with pytest.raises(SystemExit):
        cli.parse_args(["--distributed-timeout-s", "0"])
    assert "--distributed-timeout-s must be positive" in capsys.readouterr().err
    assert cli.listen_for_rank("tcp:127.0.0.1:50051", 3) == "tcp:127.0.0.1:50054"
    assert cli.listen_for_rank("tcp:127.0.0.1:0", 3) == "tcp:127.0.0.1:0"
    assert cli.listen_for_rank("unix", 3) == "unix"
    with pytest.raises(SystemExit, match=r"above 65535"):
        cli.listen_for_rank("tcp:127.0.0.1:65535", 1)


# -- d. GetInfo -------------------------------------------------------------------------------------


def test_get_info_reports_a_lone_worker(service):
    info = call(service.GetInfo, pb.GetInfoRequest())
    assert info.HasField("distributed")
    assert (info.distributed.rank, info.distributed.world_size, info.distributed.backend, info.distributed.local_rank) == (0, 1, "", 0)

"""One SLT round under 2-process DDP on CPU (ddp_spawn): both ranks hold identical masks."""

from pathlib import Path

from lightning_slt.experiments import ExperimentConfig, run_experiment

BASE = str(Path(__file__).parent / "tiny_base.yaml")


def test_slt_round_under_ddp_has_identical_masks_on_both_ranks(tmp_path, data_root):
    digests = tmp_path / "digests"
    digests.mkdir()
    ddp = tmp_path / "ddp.yaml"
    ddp.write_text(
        "trainer:\n  devices: 2\n  strategy: ddp_spawn\n  use_distributed_sampler: false\n"
        "  callbacks:\n    - class_path: tests.callbacks.test_ddp.MaskDigest\n"
        f"      init_args: {{out_dir: {digests}}}\n"
    )
    config = ExperimentConfig(base=[BASE, str(ddp)], methods=["slt"], targets=[0.5], output_dir=str(tmp_path / "exp"))
    run_experiment(config)
    # MaskDigest asserts agreement through the strategy on every rank and writes one file per rank
    assert sorted(p.name for p in digests.iterdir()) == ["rank0.txt", "rank1.txt"]
    assert (digests / "rank0.txt").read_text() == (digests / "rank1.txt").read_text()
    assert (tmp_path / "exp" / "seed0" / "dense" / "slt_0.50" / "metrics.json").exists()

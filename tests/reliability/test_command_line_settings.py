"""A setting given on the command line is used, not silently replaced by a checkpoint's.

LightningCLI alone rebuilds the model from every hyper-parameter stored in ``--ckpt_path``, so
``lightning-slt test --ckpt_path x.ckpt --model.beam_size=2`` used to decode with the training
run's beam size and write where the training run wrote. Only the architecture must follow the
checkpoint.
"""

import json

from lightning_slt import cli

from .tiny import cli_config, make_data, make_module, make_trainer


def test_test_with_ckpt_path_keeps_decoding_and_output_settings(data_root, spm_cache, tmp_path):
    data = make_data(data_root, spm_cache)
    trainer = make_trainer(tmp_path / "train", max_steps=2)
    trainer.fit(make_module(data, beam_size=1, output_dir=str(tmp_path / "training_outputs")), datamodule=data)
    trainer.save_checkpoint(tmp_path / "trained.ckpt")

    config = cli_config(tmp_path, data_root, spm_cache)
    out = tmp_path / "evaluation"
    assert cli.main(["test", "--config", str(config), "--ckpt_path", str(tmp_path / "trained.ckpt"),
                     "--model.beam_size=2", f"--model.output_dir={out}",
                     "--model.d_model=32"]) == 0  # ignored: the architecture is the checkpoint's (d_model 16)

    metrics = json.loads((out / "metrics_test.json").read_text())
    assert (metrics["beam_size"], metrics["n_sentences"], metrics["global_step"]) == (2, 8, 2)
    assert (out / "hypotheses_test.txt").read_text(encoding="utf-8").count("\n") == 8
    assert not (tmp_path / "training_outputs").exists()  # nothing went where the training run wrote

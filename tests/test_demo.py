"""``lightning-slt demo``: a dense run and one SLT round at tiny sizes, and the table it prints
(pinned on given numbers), the next steps it names, and a --config-dir without its folder refused."""

import pytest
import torch

from lightning_slt import cli
from lightning_slt.demo import NEXT_STEPS, demo_main, format_table


@pytest.mark.slow
def test_demo_prunes_a_ticket_from_its_dense_run_and_prints_the_table(tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo writes ./runs/demo
    overrides = [
        "--trainer.max_steps=4", "--model.d_model=32", "--model.n_heads=2", "--model.encoder_layers=1",
        "--model.decoder_layers=1", "--model.d_ff=64", "--model.max_len_b=3", "--model.warmup_steps=2",
        f"--data.data_root={data_root}", f"--data.cache_dir={tmp_path / 'spm'}", "--data.vocab_size=300",
        "--data.train_subset=256", "--data.test_subset=8", "--data.max_len=64",
    ]
    monkeypatch.setattr("lightning_slt.demo.SPEED_SENTENCES", 16)
    conf = tmp_path / "conf"  # the shipped demo configs, rewinding to θ2 of the 4-step dense run
    conf.mkdir()
    for name in ("base", "dense", "slt"):
        text = (cli.REPO_CONF / "demo" / f"{name}.yaml").read_text()
        (conf / f"{name}.yaml").write_text(text.replace("{step: 100}", "{step: 2}").replace("step: 100\n", "step: 2\n"))
    assert cli.main(["demo", "--config-dir", str(conf), *overrides]) == 0
    out = capsys.readouterr().out
    dense, slt = tmp_path / "runs/demo/dense", tmp_path / "runs/demo/slt"
    from lightning_slt.artifacts.ticket import read_ticket

    ticket = read_ticket(slt / "model.ticket")
    kept = sum(int(m.sum()) for m in ticket.masks.values())
    assert 1 - kept / sum(m.numel() for m in ticket.masks.values()) == pytest.approx(0.8, abs=1e-3)  # conf/demo/slt.yaml
    checkpoint = torch.load(slt / "last.ckpt", map_location="cpu", weights_only=False)
    dense_checkpoint = torch.load(dense / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == dense_checkpoint["global_step"] == 4
    assert "| Multi30k en→de, 4 + 4 steps | dense | SLT ticket |" in out
    for row in ("| test2016 BLEU (greedy) |", "| parameters remaining |", "| file | last.ckpt ",
                "| translation speed, 16 sentences, "):
        assert row in out
    assert "lightning-slt experiment --config conf/experiments/slt.yaml" in out


def test_the_table_states_bleu_parameters_files_and_speed_side_by_side():
    rows = {
        "dense": {"bleu": 12.5, "steps": 600, "parameters": 8_000_000, "nonzero": 8_000_000,
                  "checkpoint_bytes": 96_000_000, "ticket_bytes": 32_000_000, "sentences_per_s": 20.0},
        "slt": {"bleu": 13.25, "steps": 300, "parameters": 8_000_000, "nonzero": 1_600_000,
                "checkpoint_bytes": 97_000_000, "ticket_bytes": 4_800_000, "sentences_per_s": 30.0},
    }
    threads = torch.get_num_threads()
    assert format_table(rows, minutes=5.83, sentences=300) == "\n".join([
        "",
        "| Multi30k en→de, 600 + 300 steps | dense | SLT ticket |",
        "|---|---|---|",
        "| test2016 BLEU (greedy) | 12.50 | 13.25 (+0.75) |",
        "| parameters remaining | 8.00M of 8.00M | 1.60M (20.0%; 80.0% pruned overall) |",
        "| file | last.ckpt 96.0 MB; as ticket 32.0 MB | ticket 4.8 MB (5.0% of last.ckpt) |",
        f"| translation speed, 300 sentences, {threads} threads | 20.0 sent/s (dense kernels) | 30.0 sent/s "
        "(1.50×, `--sparse auto`) |",
        "",
        "(demo took 5.8 min)",
        "",
    ])


def test_the_next_steps_use_the_ticket_just_written():
    text = NEXT_STEPS.format(ticket="runs/demo/slt/model.ticket", slt_ckpt="runs/demo/slt/last.ckpt")
    assert 'echo "A dog runs on the beach." | lightning-slt translate --ticket runs/demo/slt/model.ticket --sparse auto' in text
    assert "lightning-slt export runs/demo/slt/model.ticket --format ctranslate2 --quantization int8" in text


def test_config_dir_needs_its_folder():
    with pytest.raises(SystemExit, match="^lightning-slt demo: --config-dir needs a folder holding base.yaml, dense.yaml "
                                         "and slt.yaml$"):
        demo_main(["--config-dir"])

"""Winning tickets θk ⊙ m: export from a real pruned run, start the next round from the file
bit for bit, and refuse what cannot be one (no θk, wrong step, no mask, corrupted file)."""

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from lightning_slt import ConvergedMask, GradualMagnitudePruning, WeightRewind
from lightning_slt.callbacks import session_of
from lightning_slt.data import TranslationDataModule
from lightning_slt.export.checkpoint import export_checkpoint
from lightning_slt.export.cli import export_main
from lightning_slt.artifacts.ticket import TicketError, read_ticket
from lightning_slt.export.winning_ticket import export_winning_ticket
from lightning_slt.model.module import TranslationModule
from lightning_slt.pruning import magnitude_masks
from tests.callbacks.tiny import Probe

TINY = dict(d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1, d_ff=64, max_positions=128,
            dropout=0.1, lr=3e-3, warmup_steps=4, beam_size=2, max_len_a=1.0, max_len_b=5)
K = 2  # the rewind step the source run records


def tiny_data(data_root: Path, root: Path) -> TranslationDataModule:
    return TranslationDataModule(data_root=str(data_root), cache_dir=str(root / "spm"), vocab_size=300,
                                 train_subset=256, valid_subset=32, test_subset=32, max_tokens=256, max_len=64,
                                 max_positions=128, eval_max_tokens=1024)


def fit(data_root: Path, root: Path, callbacks: list, max_steps: int, seed: int) -> pl.Trainer:
    data = tiny_data(data_root, root)
    pl.seed_everything(seed, verbose=False)
    module = TranslationModule(vocab_size=data.vocab_size, **TINY)
    trainer = pl.Trainer(default_root_dir=str(root), logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, max_steps=max_steps, callbacks=callbacks)
    trainer.fit(module, datamodule=data)
    return trainer


def train_rewound_checkpoint(data_root: Path, root: Path) -> Path:
    """A TranslationModule trained 8 steps on 256 Multi30k pairs, pruned to 80 % while recording θ2."""
    trainer = fit(data_root, root, [GradualMagnitudePruning(final_sparsity=0.8, end_step=4, frequency=2),
                                    WeightRewind(step=K)], max_steps=8, seed=0)
    trainer.save_checkpoint(root / "last.ckpt")
    return root / "last.ckpt"


@pytest.fixture(scope="module")
def rewound(data_root, tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, its winning ticket)."""
    root = tmp_path_factory.mktemp("rewound")
    ckpt = train_rewound_checkpoint(data_root, root)
    export_winning_ticket(ckpt, root / "wt.ticket")
    return ckpt, root / "wt.ticket"


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.view(torch.int32)


def _start(data_root: Path, root: Path, callbacks: list) -> tuple[dict, dict]:
    """Weights at the first training batch (the assembled ticket) and the live masks of a new run."""
    probe = Probe()
    trainer = fit(data_root, root, [*callbacks, probe], max_steps=1, seed=1)  # another init than the source's
    return probe.start, session_of(trainer).masks.state_dict()


def test_next_round_from_the_winning_ticket_starts_at_theta_k_times_m_bit_for_bit(rewound, data_root, tmp_path):
    ckpt, wt = rewound
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    theta_k = checkpoint["callbacks"][f"WeightRewind{{'step': {K}}}"]["snapshot"]
    masks = checkpoint["lightning_slt"]["masks"]
    expected = {n: torch.where(masks[n], v, torch.zeros(())) if n in masks else v for n, v in theta_k.items()}

    ticket = read_ticket(wt)
    assert ticket.extra["kind"] == "winning_ticket" and ticket.extra["rewind_step"] == K
    assert ticket.extra["recorded_steps"] == [K] and ticket.extra["source_checkpoint"] == "last.ckpt"
    assert ticket.extra["masks_from"] == "checkpoint" and ticket.extra["global_step"] == 8
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert ticket.extra["sparsity"] == pruned / sum(m.numel() for m in masks.values())
    assert ticket.extra["sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert set(ticket.masks) == set(masks) and all(torch.equal(ticket.masks[n], masks[n]) for n in masks)
    assert set(ticket.state_dict) == set(checkpoint["state_dict"])
    for name, value in expected.items():
        assert torch.equal(_bits(ticket.state_dict[name]), _bits(value)), name
    assert wt.stat().st_size < ckpt.stat().st_size / 2

    start, live_masks = _start(data_root, tmp_path / "from_ticket",
                               [WeightRewind(step=K, source=str(wt)), ConvergedMask(str(wt), sparsity=None)])
    assert set(start) == set(expected)
    for name, value in start.items():
        assert torch.equal(_bits(value), _bits(expected[name])), name
    assert set(live_masks) == set(masks) and all(torch.equal(live_masks[n], masks[n]) for n in masks)
    from_ckpt, _ = _start(data_root, tmp_path / "from_ckpt",
                          [WeightRewind(step=K, source=str(ckpt)), ConvergedMask(str(ckpt), sparsity=None)])
    assert all(torch.equal(_bits(from_ckpt[n]), _bits(start[n])) for n in start)  # same start as the checkpoint's


def test_converged_mask_prunes_an_ordinary_tickets_weights(rewound, data_root, tmp_path):
    ckpt, wt = rewound
    export_checkpoint(ckpt, tmp_path / "m.ticket")
    ticket = read_ticket(tmp_path / "m.ticket")
    assert ticket.extra["kind"] == "ticket"
    _, live_masks = _start(data_root, tmp_path / "run",
                           [WeightRewind(step=K, source=str(wt)), ConvergedMask(str(tmp_path / "m.ticket"), 0.9)])
    expected = magnitude_masks({n: ticket.state_dict[n] for n in ticket.masks}, 0.9, current=ticket.masks)
    assert set(live_masks) == set(expected) and all(torch.equal(live_masks[n], expected[n]) for n in expected)
    assert all(not (live_masks[n] & ~ticket.masks[n]).any() for n in expected)  # nested in the ticket's mask


def test_export_command_writes_a_winning_ticket_and_names_bad_steps(rewound, tmp_path, capsys):
    ckpt, wt = rewound
    out = tmp_path / "cli.ticket"
    assert export_main([str(ckpt), "--out", str(out), "--winning-ticket", "--step", str(K)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kind"] == "winning_ticket" and printed["step"] == K
    assert printed["bytes"]["file"] == out.stat().st_size and printed["bytes"]["checkpoint"] == ckpt.stat().st_size
    assert out.read_bytes() == wt.read_bytes()  # deterministic: same bytes as the Python API's
    with pytest.raises(SystemExit, match=rf"lightning-slt export: {ckpt} has no θ_5: it recorded steps \[2\]; "
                                         r"pass one of them as step= \(--step\)"):
        export_main([str(ckpt), "--out", str(tmp_path / "x.ticket"), "--winning-ticket", "--step", "5"])
    with pytest.raises(SystemExit):
        export_main([str(ckpt), "--out", str(tmp_path / "x.ticket"), "--step", "2"])
    assert "--step needs --winning-ticket" in capsys.readouterr().err
    assert not (tmp_path / "x.ticket").exists()


def _edited(ckpt: Path, out: Path, edit) -> Path:
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    edit(checkpoint)
    torch.save(checkpoint, out)
    return out


def test_checkpoints_without_a_usable_theta_k_or_mask_are_refused(rewound, tmp_path):
    ckpt, _ = rewound
    key = f"WeightRewind{{'step': {K}}}"
    no_rewind = _edited(ckpt, tmp_path / "a.ckpt", lambda c: c["callbacks"].pop(key))
    with pytest.raises(ValueError, match=r"a.ckpt holds no θk: the run had no WeightRewind callback; train the run "
                                         r"with WeightRewind\(step=k\)"):
        export_winning_ticket(no_rewind, tmp_path / "x.ticket")
    early = _edited(ckpt, tmp_path / "b.ckpt", lambda c: c["callbacks"][key].update(snapshot=None))
    with pytest.raises(ValueError, match=r"holds no θk: WeightRewind\(step=2\) had not reached its step when this "
                                         r"checkpoint was saved \(global_step 8\)"):
        export_winning_ticket(early, tmp_path / "x.ticket")
    two = _edited(ckpt, tmp_path / "c.ckpt", lambda c: c["callbacks"].update(
        {"WeightRewind{'step': 5}": dict(c["callbacks"][key], step=5)}))
    with pytest.raises(ValueError, match=r"c.ckpt recorded θk at steps \[2, 5\]; choose one with step= \(--step\)"):
        export_winning_ticket(two, tmp_path / "x.ticket")
    with pytest.raises(ValueError, match=r"c.ckpt has no θ_3: it recorded steps \[2, 5\]"):
        export_winning_ticket(two, tmp_path / "x.ticket", step=3)
    assert export_winning_ticket(two, tmp_path / "five.ticket", step=5)["file"] > 0
    assert read_ticket(tmp_path / "five.ticket").extra["rewind_step"] == 5

    def dense(c):  # a run without pruning: no stored masks, no zero weights
        del c["lightning_slt"]
        c["state_dict"] = {n: torch.rand_like(v) + 1 if v.is_floating_point() else v for n, v in c["state_dict"].items()}
    with pytest.raises(ValueError, match=r"d.ckpt has no mask: no masks stored by the pruning callbacks and no zero "
                                         r"weights; .* use `lightning-slt export` without --winning-ticket"):
        export_winning_ticket(_edited(ckpt, tmp_path / "d.ckpt", dense), tmp_path / "x.ticket")
    assert not (tmp_path / "x.ticket").exists()


def test_tied_weights_stay_tied_and_buffers_come_from_the_checkpoint(tmp_path):
    embed, bias, theta_embed, theta_bias = torch.randn(6, 4), torch.randn(6), torch.randn(6, 4), torch.randn(6)
    mask = torch.rand(6, 4, generator=torch.Generator().manual_seed(0)) > 0.5
    checkpoint = {
        "state_dict": {"model.embed.weight": embed, "model.out.weight": embed, "model.out.bias": bias,
                       "model.steps": torch.tensor(3)},
        "hyper_parameters": {"d_model": 4},
        "callbacks": {"WeightRewind{'step': 0}": {"step": 0, "snapshot": {"model.embed.weight": theta_embed,
                                                                           "model.out.bias": theta_bias}}},
        "lightning_slt": {"masks": {"model.embed.weight": mask}},
    }
    torch.save(checkpoint, tmp_path / "tied.ckpt")
    export_winning_ticket(tmp_path / "tied.ckpt", tmp_path / "tied.ticket")
    ticket = read_ticket(tmp_path / "tied.ticket")
    assert ticket.state_dict["model.out.weight"] is ticket.state_dict["model.embed.weight"]  # stored once
    assert torch.equal(ticket.state_dict["model.embed.weight"], torch.where(mask, theta_embed, torch.zeros(())))
    assert torch.equal(ticket.state_dict["model.out.bias"], theta_bias)
    assert torch.equal(ticket.state_dict["model.steps"], torch.tensor(3))
    assert ticket.extra["rewind_step"] == 0 and ticket.extra["sparsity"] == int((~mask).sum()) / 24


@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_a_damaged_winning_ticket_fails_with_its_own_error_before_training(damage, rewound, data_root, tmp_path):
    _, wt = rewound
    data = bytearray(wt.read_bytes())
    bad = tmp_path / "bad.ticket"
    if damage == "corrupt":
        data[len(data) // 2] ^= 0x01
        message = rf"{bad}: (payload|tokenizer) checksum mismatch: the ticket file is corrupted"
    else:
        data = data[: len(data) - 1000]
        message = rf"{bad}: ticket is truncated: expected \d+ bytes, file has {len(data)}"
    bad.write_bytes(bytes(data))
    for callbacks in ([WeightRewind(step=K, source=str(bad))], [ConvergedMask(str(bad), sparsity=None)]):
        probe = Probe()
        with pytest.raises(TicketError, match=message):
            fit(data_root, tmp_path / "run", [*callbacks, probe], max_steps=1, seed=1)
        assert probe.start is None  # refused at setup, before any batch


def test_rewinding_to_a_step_the_winning_ticket_does_not_hold_is_refused(rewound, data_root, tmp_path):
    _, wt = rewound
    with pytest.raises(ValueError, match=rf"rewind source '{wt}' has no θ_3: it recorded steps \[2\]; set step=2, "
                                         r"or export the run's checkpoint again with --winning-ticket --step 3"):
        fit(data_root, tmp_path / "run", [WeightRewind(step=3, source=str(wt))], max_steps=4, seed=1)
    with pytest.raises(ValueError, match=r"is a winning_ticket file and holds no optimizer state; pass the run's "
                                         r"Lightning checkpoint as source for restore_optimizer=True"):
        fit(data_root, tmp_path / "run2", [WeightRewind(step=K, source=str(wt), restore_optimizer=True)], max_steps=4, seed=1)


def test_a_winning_ticket_keeps_float32_values(rewound, tmp_path):
    ckpt, _ = rewound
    with pytest.raises(ValueError, match=r"a winning ticket stores float32 values so that a run rewound to it starts "
                                         r"from θk bit for bit; got values_dtype='float16'"):
        export_winning_ticket(tmp_path / "not-read.ckpt", tmp_path / "x.ticket", values_dtype="float16")
    with pytest.raises(SystemExit, match="lightning-slt export: a winning ticket stores float32 values"):
        export_main([str(ckpt), "--out", str(tmp_path / "x.ticket"), "--winning-ticket", "--values", "fp16"])
    assert not (tmp_path / "x.ticket").exists()


def test_pruning_a_winning_ticket_further_is_refused_with_the_way_out(rewound, data_root, tmp_path):
    _, wt = rewound
    with pytest.raises(ValueError, match=r"is a winning ticket \(θk ⊙ m\), not converged weights θT to prune; "
                                         r"set sparsity=None to take its mask"):
        fit(data_root, tmp_path / "run", [ConvergedMask(str(wt), sparsity=0.9)], max_steps=1, seed=1)


def test_rewinding_to_an_ordinary_ticket_warns_that_it_takes_its_trained_weights(rewound, data_root, tmp_path):
    ckpt, _ = rewound
    ticket = tmp_path / "model.ticket"
    export_checkpoint(ckpt, ticket)
    with pytest.warns(UserWarning, match=rf"holds weights but no recorded θ_{K} \(ticket\): taking its weights"):
        fit(data_root, tmp_path / "run", [WeightRewind(step=K, source=str(ticket))], max_steps=1, seed=1)


def _winning_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "is a winning ticket" in str(w.message)]


def test_translating_a_winning_ticket_warns_that_it_is_the_start_of_a_round(rewound, tmp_path):
    import warnings

    from lightning_slt.export.translate import translate_main

    ckpt, winning = rewound
    export_checkpoint(ckpt, tmp_path / "final.ticket")
    (tmp_path / "in.txt").write_text("A dog runs.\n")
    for ticket, expected in ((winning, 1), (tmp_path / "final.ticket", 0)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert translate_main(["--ticket", str(ticket), "--input", str(tmp_path / "in.txt"), "--output",
                                   str(tmp_path / "out.txt"), "--sparse", "off", "--beam", "1"]) == 0
        said = _winning_warnings(caught)
        assert len(said) == expected, said
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        translate_main(["--ticket", str(winning), "--input", str(tmp_path / "in.txt"), "--sparse", "off"])
    assert _winning_warnings(caught) == [
        f"{winning} is a winning ticket (θ{K} ⊙ m: its run's weights at step {K} under the run's mask), the start of "
        "the next pruning round, not a trained model: these translations are those of the weights at that step. To "
        "use the trained model, export the run's checkpoint without --winning-ticket (`lightning-slt export "
        "<checkpoint> --out model.ticket`) and give that ticket"]


def test_loading_a_winning_ticket_in_python_warns_too(rewound, tmp_path):
    import warnings

    from lightning_slt.export import load_ticket

    ckpt, winning = rewound
    export_checkpoint(ckpt, tmp_path / "final.ticket")
    with pytest.warns(UserWarning, match=rf"is a winning ticket \(θ{K} ⊙ m.*not a trained model: the module holds "
                                         "the weights of that step"):
        module = load_ticket(winning)
    assert module.model.config.d_model > 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_ticket(tmp_path / "final.ticket")
    assert _winning_warnings(caught) == []
    from lightning_slt.artifacts import keys
    from lightning_slt.artifacts.ticket import write_ticket

    ticket = read_ticket(winning)  # a winning ticket whose header lost its step: still said, as θk
    extra = {k: v for k, v in ticket.extra.items() if k != keys.EXTRA_REWIND_STEP}
    write_ticket(tmp_path / "no_step.ticket", ticket.state_dict, ticket.masks, ticket.model_config,
                 ticket.tokenizer_proto, extra=extra)
    with pytest.warns(UserWarning, match=r"is a winning ticket \(θk ⊙ m: its run's weights at step k under"):
        load_ticket(tmp_path / "no_step.ticket")


def test_exporting_a_winning_ticket_to_ctranslate2_warns_too(rewound, tmp_path):
    pytest.importorskip("ctranslate2")
    from lightning_slt.export.ctranslate2 import export_ctranslate2

    _, winning = rewound
    with pytest.warns(UserWarning, match=rf"is a winning ticket \(θ{K} ⊙ m.*not a trained model: the CTranslate2 model "
                                         "will hold the weights of that step"):
        export_ctranslate2(winning, tmp_path / "ct2")
    assert (tmp_path / "ct2" / "model.bin").is_file()

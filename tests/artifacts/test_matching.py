"""Sources that cover only part of the model, written by real tools: a ``torch.nn.utils.prune`` file
that pruned only the Linear layers, a Hugging Face ``save_pretrained`` folder (no frozen position
tables), a Lightning ``ModelPruning`` checkpoint (no θk). Masks of uncovered tensors count as
unpruned; weights are never invented: refused, naming exactly what is missing and the fix."""

import re

import pytest
import torch
from torch.nn.utils import prune

from lightning_slt import ConvergedMask, WeightRewind
from lightning_slt.artifacts import load_source, match_names
from lightning_slt.artifacts import match_masks

from ..callbacks.tiny import Probe, fresh_module, make_trainer
from ..pruning._foreign import POSITIONS, Seq2Seq, marian

LINEARS = ("net.0.weight", "net.3.weight")


def _run(callbacks, steps=1, module=None):
    module = module if module is not None else fresh_module(1)  # another init than the source's
    probe = Probe()
    make_trainer(steps, [*callbacks, probe]).fit(module)
    return module, probe


@pytest.fixture
def linears_pruned(tmp_path):
    """torch.nn.utils.prune on the two Linear layers of a model that also has an embedding."""
    theirs = fresh_module(3)
    for layer in (theirs.net[0], theirs.net[3]):
        prune.l1_unstructured(layer, "weight", amount=0.5)
    path = tmp_path / "pruned.pt"
    torch.save(theirs.state_dict(), path)
    return path, theirs


def test_a_torch_prune_file_of_some_layers_is_read_as_it_is(linears_pruned):
    path, theirs = linears_pruned
    source = load_source(path)
    assert source.kind == "torch_prune"
    for name in LINEARS:
        assert torch.equal(source.masks[name], theirs.get_submodule(name[:-7]).weight_mask.bool())
    assert bool(source.masks["embed.weight"].all())  # not pruned there: all kept
    _, probe = _run([ConvergedMask(str(path)), WeightRewind(0, source=str(path))])
    for name in LINEARS:
        assert torch.equal(probe.start[name], theirs.get_submodule(name[:-7]).weight.detach())
    assert torch.equal(probe.start["embed.weight"], theirs.embed.weight.detach())
    _, probe = _run([ConvergedMask(str(path), sparsity=0.6)])  # nested in its mask, the embedding pruned too
    for name in ("embed.weight", *LINEARS):
        zeros = probe.start[name] == 0
        assert int(zeros.sum()) == round(0.6 * zeros.numel()) and not (~source.masks[name] & ~zeros).any()


def test_messages_name_only_the_truly_missing_tensors(tmp_path):
    theirs = fresh_module(3)
    state = {f"model.{n}": p for n, p in theirs.state_dict().items() if n != "embed.weight"}  # prefixed, one short
    path = tmp_path / "short.pt"
    torch.save(state, path)
    rewind = re.escape(f"rewind source '{path}' has no weights for 1 of the 7 parameters to rewind: ['embed.weight']; "
                       "θ_k cannot be invented — pass exclude=['embed.weight'] to keep the model's current values")
    with pytest.raises(ValueError, match=rewind):
        _run([WeightRewind(0, source=str(path))])
    mask = re.escape(f"checkpoint '{path}' does not match the model: it has no tensor for 1 of the 3 selected "
                     "(model names: ['embed.weight']); select only what it has, e.g. exclude=['embed.weight']")
    with pytest.raises(ValueError, match=mask):
        _run([ConvergedMask(str(path), sparsity=0.5)])
    module = fresh_module(1)
    own = module.embed.weight.detach().clone()
    with pytest.warns(UserWarning, match="taking its weights as θ_0"):
        _, probe = _run([WeightRewind(0, source=str(path), exclude=["embed.*"])], module=module)
    assert torch.equal(probe.start["embed.weight"], own)
    assert all(torch.equal(probe.start[n[6:]], p) for n, p in state.items())
    with pytest.raises(ValueError, match="exclude pattern 'encoder.*' matches no parameter of TinyModule"):
        _run([WeightRewind(0, source=str(path), exclude=["encoder.*"])])


def test_uncovered_masks_count_as_unpruned_with_a_warning():
    params = {"a.weight": torch.ones(4, 4), "b.weight": torch.ones(2, 3)}
    masks = {"model.a.weight": torch.rand(4, 4) > 0.5}
    with pytest.warns(UserWarning, match=re.escape("has no mask for 1 of the 2 selected tensors, taken as unpruned: "
                                                   "['b.weight']; to leave them out of pruning altogether pass "
                                                   "exclude=['b.weight']")):
        found = match_masks(params, masks, "mask file")
    assert torch.equal(found["a.weight"], masks["model.a.weight"]) and bool(found["b.weight"].all())
    with pytest.raises(ValueError, match="does not match the model: no tensor for"):
        match_masks(params, {"other.bias": torch.ones(3, dtype=torch.bool)})
    assert match_names(["a.weight"], masks) == {"a.weight": "model.a.weight"}


def test_a_hugging_face_save_pretrained_folder_is_a_source(tmp_path):
    theirs = marian(1)
    theirs.save_pretrained(tmp_path / "hf")
    theirs.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    whole, file, shards = (load_source(p) for p in (tmp_path / "hf", tmp_path / "hf" / "model.safetensors",
                                                    tmp_path / "sharded"))
    assert whole.kind == file.kind == shards.kind == "safetensors"
    assert whole.weights.keys() == shards.weights.keys() and not set(POSITIONS) & whole.weights.keys()
    assert all(torch.equal(whole.weights[n], shards.weights[n]) for n in whole.weights)
    (tmp_path / "bin").mkdir()  # what transformers 4 wrote with safe_serialization=False
    torch.save({n: whole.weights[n] for n in whole.weights}, tmp_path / "bin" / "pytorch_model.bin")
    binary = load_source(tmp_path / "bin")
    assert binary.kind == "state_dict" and binary.weights.keys() == whole.weights.keys()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((tmp_path / "hf" / "model.safetensors").read_bytes()[:-100])
    with pytest.raises(ValueError, match=rf"cannot read pruning source '{cut}' \(safetensors: .*truncated or corrupt"):
        load_source(cut)
    with pytest.raises(FileNotFoundError, match="is a folder without model.safetensors or pytorch_model.bin"):
        load_source(tmp_path)
    hf = str(tmp_path / "hf")
    missing = re.escape(f"has no weights for 2 of the 87 parameters to rewind: "
                        f"{['model.' + n for n in POSITIONS]} (all frozen, requires_grad=False")
    with pytest.raises(ValueError, match=missing + r".*exclude=\['\*\.embed_positions\.weight'\]"):
        _run([WeightRewind(0, source=hf)], module=Seq2Seq(marian(0)))
    module = Seq2Seq(marian(0))
    tables = {n: module.get_parameter(f"model.{n}").detach().clone() for n in POSITIONS}
    with pytest.warns(UserWarning, match=r"\(safetensors\): taking its weights as θ_0"):
        _, probe = _run([ConvergedMask(hf, 0.8), WeightRewind(0, source=hf, exclude=["*.embed_positions.weight"])],
                        module=module)
    for name, weight in whole.weights.items():
        if f"model.{name}" in probe.start:
            start = probe.start[f"model.{name}"]
            assert torch.equal(start[start != 0], weight[start != 0]), name
    assert all(torch.equal(probe.start[f"model.{n}"], tables[n]) for n in POSITIONS)
    q = probe.start["model.model.encoder.layers.0.self_attn.q_proj.weight"]
    assert int((q == 0).sum()) == round(0.8 * q.numel())


@pytest.mark.parametrize("permanent", [True, False], ids=["permanent", "orig-and-mask"])
def test_a_model_pruning_checkpoint(permanent, tmp_path):
    from pytorch_lightning.callbacks import ModelPruning

    theirs = fresh_module(3)
    trainer = make_trainer(-1, [ModelPruning("l1_unstructured", amount=0.5, use_lottery_ticket_hypothesis=True,
                                             make_pruning_permanent=permanent)], max_epochs=2)
    trainer.fit(theirs)
    path = tmp_path / "model_pruning.ckpt"
    trainer.save_checkpoint(path)
    source = load_source(path)
    assert source.step == trainer.global_step == 8 and source.snapshots == {}
    assert source.kind == ("lightning" if permanent else "lightning_model_pruning")
    with pytest.raises(ValueError, match=re.escape(
            f"rewind source '{path}' has no θ_0: it recorded steps []; train the source run with WeightRewind(step=0) "
            "or rewind to a recorded step; its state_dict holds the weights at global step 8: pass step=8 to start "
            "from them; a Lightning ModelPruning run keeps its original weights (use_lottery_ticket_hypothesis) in "
            "memory only, so its checkpoints hold no θk: ConvergedMask(<checkpoint>, sparsity=None) reads their mask")):
        _run([WeightRewind(0, source=str(path))])
    with pytest.warns(UserWarning, match="WeightRewind step 8 > max_steps 1"):
        _, probe = _run([ConvergedMask(str(path)), WeightRewind(8, source=str(path))])
    assert probe.start.keys() == source.weights.keys()
    assert all(torch.equal(probe.start[n], w) for n, w in source.weights.items())
    assert all(torch.equal(probe.start[n] == 0, ~m) for n, m in source.masks.items())
    # ModelPruning's default: global L1 over every weight and bias, 0.5 of the rest each epoch
    assert sum(int((w == 0).sum()) for w in probe.start.values()) == round(0.75 * sum(w.numel() for w in probe.start.values()))

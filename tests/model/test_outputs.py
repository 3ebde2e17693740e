"""A test run's files: their names, the refusal to write over one of the test's inputs, what
metrics_<split>.json holds, and the three files written line for line."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from lightning_slt.model.metrics import TranslationScores
from lightning_slt.model.outputs import (
    check_outputs_spare_inputs,
    local_checkpoint,
    metrics_of_test,
    output_files,
    write_outputs,
)


class Data:
    corpus, src_lang, tgt_lang = "multi30k", "en", "de"

    def __init__(self, files):
        self.files = files

    def input_files(self, stage):
        assert stage == "test"
        return self.files


def test_output_files_are_named_by_split():
    assert output_files(Path("out"), "test2017") == {
        "the test hypotheses file": Path("out/hypotheses_test2017.txt"),
        "the test references file": Path("out/references_test2017.txt"),
        "the test metrics file": Path("out/metrics_test2017.json")}


def test_only_local_checkpoints_count_as_inputs():
    assert local_checkpoint("runs/best.ckpt") == "runs/best.ckpt"
    assert local_checkpoint("s3://bucket/best.ckpt") is None and local_checkpoint(None) is None


def test_outputs_that_would_replace_an_input_are_refused(tmp_path):
    corpus = tmp_path / "hypotheses_test.txt"  # a corpus file that happens to bear an output's name
    corpus.write_text("source\n")
    data = Data({"test source file": corpus})
    with pytest.raises(ValueError) as info:
        check_outputs_spare_inputs(tmp_path, "test", None, data)
    assert str(info.value) == (f"refusing to write the test hypotheses file {corpus}: it is the test source file "
                               "this command reads, and writing it would destroy that input; set model.output_dir to "
                               "another folder")
    check_outputs_spare_inputs(tmp_path / "elsewhere", "test", None, data)
    with pytest.raises(ValueError, match="it is the checkpoint this command reads"):
        check_outputs_spare_inputs(tmp_path, "x", str(tmp_path / "metrics_x.json"), Data({}))


def test_metrics_hold_scores_signatures_data_and_the_resolved_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scores = TranslationScores(bleu=30.5, chrf=55.0, ter=50.25, n_sentences=3, signatures={"bleu": "sig"})
    summary = SimpleNamespace(scores=scores, values={"test/loss": 2.5, "test/nll": 2.25})
    metrics = metrics_of_test(summary, Data({}), "test", "best.ckpt", beam_size=4, length_penalty=0.6, global_step=9)
    assert metrics == {"bleu": 30.5, "chrf": 55.0, "ter": 50.25, "loss": 2.5, "nll": 2.25, "signature": {"bleu": "sig"},
                       "n_sentences": 3, "split": "test", "corpus": "multi30k", "src_lang": "en", "tgt_lang": "de",
                       "beam_size": 4, "length_penalty": 0.6, "checkpoint": str(tmp_path / "best.ckpt"), "global_step": 9}
    remote = metrics_of_test(summary, object(), "test", "s3://b/x.ckpt", 1, 1.0, 0)
    assert remote["checkpoint"] == "s3://b/x.ckpt" and remote["corpus"] is None


def test_the_three_files_are_written_line_for_line(tmp_path):
    write_outputs(tmp_path / "run", "valid", ["Ein Hund.", ""], ["A dog.", "Nothing."], {"bleu": 1.5})
    assert (tmp_path / "run" / "hypotheses_valid.txt").read_text() == "Ein Hund.\n\n"
    assert (tmp_path / "run" / "references_valid.txt").read_text() == "A dog.\nNothing.\n"
    assert json.loads((tmp_path / "run" / "metrics_valid.json").read_text()) == {"bleu": 1.5}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "hypotheses_valid.txt", "metrics_valid.json", "references_valid.txt"]  # no temporary file left

"""SparsityMonitor's figures reach a real Lightning logger."""

import csv

import pytest
from pytorch_lightning.loggers import CSVLogger

from lightning_slt import ConvergedMask, SparsityMonitor, WeightRewind

from .tiny import fresh_module, make_trainer


def test_logs_sparsity_overlap_and_sign_agreement_to_csv(dense_ckpt, tmp_path):
    logger = CSVLogger(tmp_path, name="run")
    callbacks = [ConvergedMask(str(dense_ckpt), 0.5), WeightRewind(3, source=str(dense_ckpt)), SparsityMonitor(every_n_steps=2)]
    make_trainer(6, callbacks, logger=logger, log_every_n_steps=1).fit(fresh_module(1))
    rows = list(csv.DictReader(open(tmp_path / "run" / "version_0" / "metrics.csv")))
    logged = [r for r in rows if r.get("sparsity/global")]
    assert {1, 3, 5} <= {int(r["step"]) for r in logged}  # after optimizer steps 2, 4, 6
    first = logged[0]
    assert float(first["sparsity/global"]) == pytest.approx(0.5, abs=0.01)
    assert float(first["sparsity/net.0.weight"]) == 0.5
    assert float(first["mask/jaccard_previous"]) == pytest.approx(0.5, abs=0.02)  # dense mask vs 50 % mask
    assert 0.5 < float(first["sign/agreement_rewind"]) <= 1.0
    assert float(first["params/remaining"]) > 0


def test_without_pruning_callbacks_reports_zeros(tmp_path):
    monitor = SparsityMonitor()
    module = fresh_module()
    trainer = make_trainer(1, [monitor])
    trainer.fit(module)
    assert monitor.compute(trainer, module)["sparsity/global"] == 0.0
    with pytest.raises(ValueError, match="every_n_steps"):
        SparsityMonitor(every_n_steps=0)

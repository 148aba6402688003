"""tools/choose.py: the config copy it fits, and the per-epoch history it reads back."""

from __future__ import annotations

import sys

import yaml

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from choose import read_history, selection_config  # noqa: E402


def test_selection_config_drops_callbacks_and_logs_to_csv(tmp_path):
    config = yaml.safe_load((ROOT / "configs" / "hapt.yaml").read_text())
    copy, monitor, mode = selection_config(config, tmp_path)
    assert (monitor, mode) == ("val/acc_macro", "max")  # the config's ModelCheckpoint
    trainer = copy["trainer"]
    assert trainer["callbacks"] == [] and trainer["enable_checkpointing"] is False
    assert trainer["logger"]["class_path"].endswith("CSVLogger") and trainer["logger"]["init_args"]["save_dir"] == str(tmp_path)
    assert copy["model"] == config["model"] and copy["data"] == config["data"]
    no_monitor = yaml.safe_load((ROOT / "configs" / "basic_motions.yaml").read_text())  # monitor: null
    assert selection_config(no_monitor, tmp_path)[1:] == ("val/acc_macro", "max")


def test_read_history_merges_the_validation_rows_of_each_epoch(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,step,train/loss,val/t/loss,val/t/acc\n0,3,0.9,,\n0,3,,0.7,0.5\n1,7,0.5,,\n1,7,,0.4,0.75\n")
    assert read_history(tmp_path) == [{"val/t/loss": 0.7, "val/t/acc": 0.5}, {"val/t/loss": 0.4, "val/t/acc": 0.75}]

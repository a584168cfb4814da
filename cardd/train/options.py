"""`cardd train`'s options, each declared once: light to import (the command line
reads them for `--help`), the runner in `cardd.train.runner`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardd.core import options
from cardd.core.options import Option

LAUNCHERS = ("none", "pytorch", "slurm")


@dataclass
class TrainOptions:
    """Everything `cardd train` takes, each field declared once as its command-line
    option (`cardd.core.options`); `None` means "as the config says"."""

    config: str = Option(
        "--config", "Config name (configs/NAME.py) or path.", default="DCN_plus"
    ).field()
    work_dir: Path | None = Option(
        "--work-dir", "Default: work_dirs/<config name>.", "path"
    ).field()
    data_root: Path | None = options.DATA_ROOT.field()
    data: Path | None = options.DATA.field()  # a dataset description file (`cardd.data.spec`)
    load_from: str | None = Option(
        "--load-from", "Start weights (path), or 'none'. Default: the config's."
    ).field()
    from_model: Path | None = Option(
        "--from",
        "Fine-tune from this cardd model (export or checkpoint): every weight loaded, the "
        "class layers re-initialised when its classes differ from the dataset's.",
        "path",
        dest="from_model",
    ).field()
    resume: str | None = Option(
        "--resume",
        "Continue a run: alone, from the newest checkpoint in the work dir; or from PATH.",
        flag_value="auto",
    ).field()
    amp: bool = Option("--amp", "Mixed-precision training (CUDA).", "flag").field()
    device: str = options.DEVICE.field()
    nproc: int = Option(
        "--nproc", "Processes on this machine (PyTorch distributed through torchrun).", "int",
        1, low=1,
    ).field()  # fmt: skip
    launcher: str = Option(
        "--launcher", "For runs started by torchrun or srun.", "choice", "none", choices=LAUNCHERS
    ).field()
    seed: int | None = Option("--seed", "Random seed.", "int").field()
    max_epochs: int | None = Option(
        "--max-epochs",
        "Train N epochs; epoch-based lr steps scale in proportion "
        "(DCN_plus 24 -> 12: steps 16, 22 -> 8, 11).",
        "int",
        low=1,
    ).field()
    cfg_options: dict = Option(
        "--cfg-options",
        "Override any config key, e.g. train_dataloader.batch_size=2 (repeatable).",
        "pairs",
    ).field()
    trust_checkpoint: bool = options.TRUST.field()
    exist_ok: bool = Option(
        "--exist-ok", "Train into a work dir that holds an earlier run.", "flag"
    ).field()
    # cProfile the way to the first iteration (cardd.openmmlab.startup)
    profile_startup: bool = Option(
        "--profile-startup",
        "Profile the way to the first iteration (cProfile): LOG_DIR/startup.prof and the "
        "slowest functions in the log. Every run logs its start-up phases anyway.",
        "flag",
    ).field()
    # torch.profiler over this many iterations (cardd.openmmlab.step_profile)
    profile_steps: int | None = Option(
        "--profile-steps",
        "Profile N training iterations (PyTorch profiler): LOG_DIR/profile_steps.txt "
        "(s/iter, how busy the GPU is, the costliest ops and kernels) and trace.json.gz.",
        "int",
        low=1,
        metavar="N",
    ).field()
    profile_after: int = Option(
        "--profile-after",
        "With --profile-steps: skip the first K iterations of this run (warm-up).",
        "int",
        10,
        low=0,
        metavar="K",
    ).field()

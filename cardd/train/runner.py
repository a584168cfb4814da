"""`cardd train`: build the run's config from the options, then hand it to mmengine's Runner.

Three steps, kept apart: `TrainOptions` (what the user asked for),
`build_config` (the merged mmengine config, checked before anything heavy
starts), `run` (one process, or `nproc` processes through torchrun).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core import logs, options
from cardd.core.devices import resolve_device, runner_device
from cardd.core.errors import CarddError, CarddUsageError
from cardd.models import checkpoints
from cardd.models.configs import load_config, set_data_root
from cardd.models.model_file import default_work_dir
from cardd.openmmlab import startup
from cardd.structures.classes import ClassSet
from cardd.train.options import LAUNCHERS, TrainOptions

if TYPE_CHECKING:
    from mmengine.config import Config

def _use_dataset(cfg: Config, opts: TrainOptions) -> ClassSet:
    """Point `cfg` at the run's dataset (`--data FILE`, else the config's own folders)
    and make it a model of that dataset's classes; a split the dataset lacks is
    dropped (without val: no validation, said in one line)."""
    from cardd.data.spec import apply_dataset, config_dataset, load_data_file

    if opts.data is not None:
        spec = load_data_file(opts.data)
    else:
        spec = config_dataset(cfg)
    classes = spec.classes()
    apply_dataset(cfg, spec, classes, set_files=opts.data is not None)
    if "val" not in spec.splits:
        checkpoint = cfg.get("default_hooks", {}).get("checkpoint")
        if checkpoint is not None:  # nothing to pick the best by
            checkpoint.pop("save_best", None)
            checkpoint.pop("rule", None)
        logs.say(f"{spec.source} has no val split: training without validation")
    return classes


def _check_resume_classes(path: Path, classes: ClassSet, trust: bool) -> None:
    """Refuse to continue a run on a dataset with other classes than it started on."""
    with checkpoints.trusting(path if trust else None):
        contents, _ = checkpoints.read_checkpoint(path, map_location="cpu")
    trained = checkpoints.checkpoint_class_set(contents)
    if trained is not None and not trained.same_classes(classes):
        raise CarddError(
            f"--resume: {path} was trained for {trained.describe()}, this dataset has "
            f"{classes.describe()}; resume on the dataset it started on, or start a new run "
            "(--from to fine-tune from it)"
        )


def _check_load_from(cfg: Config) -> None:
    from cardd.models.families import start_point_of_file

    load_from = cfg.get("load_from")
    if load_from and not cfg.get("resume") and not Path(load_from).is_file():
        known = start_point_of_file(Path(load_from).name)
        fetch = "cardd download-weights" + (f" --model {known.model}" if known else " --url URL")
        folder = Path(load_from).parent
        if known and folder != Path("checkpoints"):
            fetch += f" --dest {folder}"
        raise CarddError(
            f"pretrained checkpoint {load_from} not found: fetch it with `{fetch}`, or pass "
            "--load-from PATH (or --load-from none)"
        )


def _cap_workers(cfg: Config, world_size: int) -> None:
    """No more loader workers per process than there are CPU cores for it."""
    cores = max(1, (os.cpu_count() or 1) // world_size)
    for split in ("train", "val", "test"):
        loader = cfg.get(f"{split}_dataloader")
        if loader is not None and loader.get("num_workers", 0) > cores:
            loader.num_workers = cores


def scale_schedule(cfg: Config, max_epochs: int) -> None:
    """Train for `max_epochs` with the same schedule shape: every epoch-based point
    scales in proportion (DCN_plus: 24 epochs, steps at 16 and 22; 12 epochs: steps at
    8 and 11; RTMDet_ins_s: cosine over epochs 18-36 and plain augmentations from 30;
    12 epochs: cosine over 6-12, plain from 10). Iteration-based schedulers (the
    warm-up) are left alone."""
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = max_epochs

    def scaled(epoch: int, least: int = 0) -> int:
        return max(least, min(max_epochs, round(epoch * max_epochs / old)))

    cfg.train_cfg.val_interval = min(cfg.train_cfg.get("val_interval", 1), max_epochs)
    if cfg.train_cfg.get("dynamic_intervals"):
        intervals = cfg.train_cfg.dynamic_intervals
        cfg.train_cfg.dynamic_intervals = [(scaled(e, least=1), i) for e, i in intervals]
    schedulers = cfg.get("param_scheduler") or []
    for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
        if not scheduler.get("by_epoch", True):
            continue
        if "milestones" in scheduler:
            scheduler.milestones = [scaled(m, least=1) for m in scheduler.milestones]
        span = (scheduler.get("begin", 0), scheduler.get("end"))
        if "begin" in scheduler:
            scheduler.begin = scaled(scheduler.begin)
        if scheduler.get("end") is not None and scheduler.end <= old:
            scheduler.end = scaled(scheduler.end, least=scheduler.get("begin", 0) + 1)
        if "T_max" in scheduler and span[1] is not None and scheduler.T_max == span[1] - span[0]:
            scheduler.T_max = scheduler.end - scheduler.get("begin", 0)
    for hook in cfg.get("custom_hooks") or []:
        if hook.get("type") == "PipelineSwitchHook":  # mmdet's switch to plain augmentations
            hook["switch_epoch"] = scaled(hook["switch_epoch"], least=1)


def build_config(opts: TrainOptions, check_files: bool = True) -> Config:
    """The merged config of the run; with `check_files` also validated against the
    disk (dataset, start weights, earlier runs). Nothing is written yet."""
    if opts.data is not None and opts.data_root is not None:
        raise CarddUsageError("--data and --data-root both name the dataset: pass one")
    cfg = load_config(opts.config, opts.cfg_options)
    cfg.work_dir = str(opts.work_dir or default_work_dir(opts.config))
    if opts.data_root is not None:
        set_data_root(cfg, opts.data_root)
    if opts.load_from is not None:
        cfg.load_from = None if opts.load_from.lower() == "none" else opts.load_from
    if opts.max_epochs is not None:
        scale_schedule(cfg, opts.max_epochs)
    if opts.seed is not None:
        cfg.randomness = dict(seed=opts.seed)
    if opts.amp:
        if resolve_device(opts.device) == "cpu":
            raise CarddError("--amp needs a CUDA GPU")
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    if opts.launcher not in LAUNCHERS:
        raise CarddUsageError(f"--launcher must be one of {', '.join(LAUNCHERS)}")
    cfg.launcher = opts.launcher
    _cap_workers(cfg, world_size=int(os.environ.get("WORLD_SIZE", "1")))
    if opts.profile_steps:
        if opts.profile_steps < 0 or opts.profile_after < 0:
            raise CarddUsageError("--profile-steps and --profile-after must not be negative")
        cfg.custom_hooks = [
            *cfg.get("custom_hooks", []),
            dict(type="CarddStepProfileHook", steps=opts.profile_steps, after=opts.profile_after),
        ]
    if opts.from_model is not None:
        if opts.resume is not None or opts.load_from is not None:
            raise CarddUsageError("--from starts a new run: not with --resume or --load-from")
        cfg.load_from = None
        cfg.cardd_from = str(opts.from_model)
        cfg.cardd_trust_from = opts.trust_checkpoint
    if not check_files and opts.data is not None:
        try:  # --print-config: the dataset's classes and files when they can be read
            _use_dataset(cfg, opts)
        except CarddError:
            pass
    if check_files:
        classes = _use_dataset(cfg, opts)
        _resolve_resume(cfg, opts, classes)
        _check_load_from(cfg)
        if opts.from_model is not None:
            from cardd.train.fine_tune import check_start_model

            check_start_model(opts.from_model, cfg, opts.trust_checkpoint)
    return cfg


def _resolve_resume(cfg: Config, opts: TrainOptions, classes: ClassSet) -> None:
    """`--resume` -> the checkpoint to continue; refuse to train over an earlier run."""
    work_dir = Path(cfg.work_dir)
    if opts.resume is not None:
        if opts.resume == "auto":
            latest = checkpoints.latest_checkpoint(work_dir) if work_dir.is_dir() else None
            if latest is None:
                raise CarddError(f"--resume: no checkpoint to resume from in {work_dir}")
            resume_from = latest
        else:
            resume_from = Path(opts.resume)
            if not resume_from.is_file():
                raise CarddError(f"--resume: checkpoint {resume_from} does not exist")
        _check_resume_classes(resume_from, classes, opts.trust_checkpoint)
        cfg.resume = True
        cfg.load_from = str(resume_from)
        if int(os.environ.get("RANK", "0")) == 0:
            logs.say(f"resuming from {resume_from}")
    elif not opts.exist_ok and work_dir.is_dir() and any(work_dir.glob("*.pth")):
        raise CarddError(
            f"{work_dir} already holds checkpoints of an earlier run: --resume to continue it, "
            "--work-dir for a new run, or --exist-ok to train over it"
        )


def describe_config(cfg: Config) -> str:
    """The merged config as text, and the learning rate it trains with.

    mmengine's `auto_scale_lr` scales the configured lr by (total batch /
    base_batch_size); the text says the result, so nobody halves it twice.
    """
    text = cfg.pretty_text
    scale = cfg.get("auto_scale_lr") or {}
    optimizer = cfg.get("optim_wrapper", {}).get("optimizer", {})
    if scale.get("enable") and "lr" in optimizer:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        total = cfg.train_dataloader.batch_size * world
        lr = optimizer["lr"] * total / scale["base_batch_size"]
        text += (
            f"\n# effective lr: {lr:g} = {optimizer['lr']:g} x total batch {total} "
            f"/ base_batch_size {scale['base_batch_size']} (auto_scale_lr)\n"
        )
    return text


def _setup_distributed_cpu(cfg: Config) -> None:
    """mmengine's `pytorch` launcher assumes CUDA: start gloo ourselves and let
    DDP run without device ids, so N processes can train on CPU."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    cfg.env_cfg.dist_cfg = dict(backend="gloo")
    cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None)


#: Iterations between progress lines when the output is not a terminal (CI, slurm logs),
#: at least: a config's logger interval is for its log file (tiny_DCN_plus logs every
#: iteration), and every epoch's last iteration is shown anyway.
PROGRESS_INTERVAL = 20


def run_training(cfg: Config, device: str, trust: Path | None = None) -> Path:
    """Train in this process (one rank of a distributed run, or the only one)."""
    checkpoints.install_loader()
    if cfg.launcher != "none" and device == "cpu":
        _setup_distributed_cpu(cfg)
    work_dir = Path(cfg.work_dir)
    # mmengine keeps one visualizer per name, and mmdet's runtime config names it
    # "visualizer": a second run in one process (the demo, tests) would log its
    # scalars into the first run's folder, and its training curves would be empty.
    cfg.visualizer.name = f"cardd-train-{uuid.uuid4().hex[:12]}"
    if logs.verbosity() == logs.NORMAL:  # verbose: mmengine's own lines; quiet: nothing
        interval = cfg.get("default_hooks", {}).get("logger", {}).get("interval", 50)
        cfg.custom_hooks = [
            *cfg.get("custom_hooks", []),
            dict(type="CarddProgressHook", interval=max(interval, PROGRESS_INTERVAL)),
        ]
    with checkpoints.trusting(trust):
        runner = _recording_runner().from_cfg(cfg)
        startup.TIMELINE.mark("rest of the runner (model wrapper, hooks)")
        runner.train()
    return work_dir


def _recording_runner() -> type:
    """mmengine's Runner, recording the sha256 of every checkpoint it saves in the
    user's trust registry (`cardd.models.checkpoints`), so `--resume` may unpickle them."""
    from mmengine.runner import Runner

    from cardd.openmmlab.runner import quiet_runner

    class RecordingRunner(quiet_runner(Runner)):
        # start-up marks around the parts of Runner.__init__ that can take long
        def _log_env(self, env_cfg):
            startup.TIMELINE.mark("runner set-up (distributed, seed, logger)")
            super()._log_env(env_cfg)
            startup.TIMELINE.mark("environment log")

        def build_model(self, model):
            built = super().build_model(model)
            startup.TIMELINE.mark("visualizer and model")
            return built

        def load_or_resume(self):
            start = self.cfg.get("cardd_from")
            if start and not self._resume:  # `--from`: cardd's loader, heads by classes
                from mmengine.dist import is_main_process

                from cardd.train.fine_tune import load_start_weights

                trust = Path(start) if self.cfg.get("cardd_trust_from") else None
                line = load_start_weights(self.model, Path(start), self.cfg, trust)
                self.logger.info(line)
                if is_main_process() and logs.verbosity() == logs.NORMAL:
                    logs.say(line)  # verbose: the logger's line shows already
                return
            super().load_or_resume()

        def save_checkpoint(self, out_dir, filename, file_client_args=None,
                            save_optimizer=True, save_param_scheduler=True, meta=None,
                            **kwargs):  # fmt: skip
            # mmengine's Runner.save_checkpoint builds the checkpoint and hands it to
            # `mmengine.runner.runner.save_checkpoint`; cardd's writer takes its place
            # for the call, so the recorded hash is that of the bytes written.
            from mmengine.runner import runner as runner_module

            from cardd.models.formats import RECORD_KEY

            # the model's record (`cardd.models.record`): what loading builds it from
            meta = {**(meta or {}), RECORD_KEY: self._model_record()}
            args = (file_client_args, save_optimizer, save_param_scheduler, meta)
            original = runner_module.save_checkpoint
            runner_module.save_checkpoint = _save_recorded_checkpoint
            try:
                super().save_checkpoint(out_dir, filename, *args, **kwargs)
            finally:
                runner_module.save_checkpoint = original

        def _model_record(self) -> dict | None:
            """The run's model record, worked out once (None: a config cardd does not
            ship, whose checkpoints load only with that config named)."""
            if not hasattr(self, "_cardd_record"):
                from cardd.models.configs import config_classes
                from cardd.models.record import record_of

                classes = config_classes(self.cfg)
                hint = Path(str(getattr(self.cfg, "filename", "") or "")).stem or None
                self._cardd_record = record_of(self.cfg, classes, hint) if classes else None
            return self._cardd_record

    return RecordingRunner


def _save_recorded_checkpoint(checkpoint: dict, filename: str, **kwargs) -> None:
    """mmengine's `save_checkpoint` for local files, on rank 0: serialised once, the
    hash of those bytes recorded, the file written whole (`checkpoints.save_recorded`)."""
    import io

    import torch
    from mmengine.dist import is_main_process
    from mmengine.runner.checkpoint import save_checkpoint

    if "://" in str(filename) or any(kwargs.values()):
        save_checkpoint(checkpoint, filename, **kwargs)  # remote: not in the trust registry
        return
    if not is_main_process():
        return
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    checkpoints.save_recorded(buffer.getvalue(), Path(filename))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_argv(opts: TrainOptions) -> list[str]:
    """The `cardd train` arguments one torchrun worker gets for `opts`: every option as
    declared (`cardd.core.options`), but the ones the supervisor decides."""
    argv = ["--config", opts.config, "--device", opts.device, "--launcher", "pytorch"]
    argv += {logs.QUIET: ["--quiet"], logs.VERBOSE: ["--verbose"]}.get(logs.verbosity(), [])
    for option in options.options_of(TrainOptions):
        if option.name not in ("config", "device", "launcher", "nproc"):
            argv += option.argv(getattr(opts, option.name))
    return argv


def launch_local(opts: TrainOptions) -> int:
    """Run `opts` under torchrun with `opts.nproc` processes on this machine."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={opts.nproc}",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "cardd",
        "train",
        *worker_argv(opts),
    ]
    return subprocess.call(command)


def train(opts: TrainOptions, from_process_start: bool = False) -> Path:
    """Run `cardd train`. With `nproc > 1` this process only supervises torchrun.

    Args:
        from_process_start: this process is the run (the `cardd train` command): its
            start-up report counts from the process's start, interpreter and imports too.

    Returns:
        The work dir.
    """
    if opts.nproc < 1:
        raise CarddUsageError("--nproc must be >= 1")
    timeline = startup.begin(from_process_start)
    timeline.mark("interpreter, imports and options" if from_process_start else "options")
    if opts.profile_startup and opts.nproc == 1:  # with --nproc, each worker profiles itself
        timeline.start_profile()
    try:
        return _train(opts, timeline)
    finally:
        timeline.stop_profile()  # a run that ended (or failed) before its first iteration


def _train(opts: TrainOptions, timeline: startup.StartupTimeline) -> Path:
    if opts.nproc > 1:
        if opts.launcher != "none":
            raise CarddUsageError(
                "--nproc starts its own processes: do not combine it with --launcher"
            )
        device = runner_device(opts.device, distributed=True)
        if device == "cuda":
            import torch

            if torch.cuda.device_count() < opts.nproc:
                visible = torch.cuda.device_count()
                raise CarddError(f"--nproc {opts.nproc} needs {opts.nproc} GPUs, {visible} visible")
        build_config(opts)  # fail here, once, rather than in every process
        code = launch_local(opts)
        if code != 0:
            raise CarddError(f"distributed training failed (torchrun exit code {code})")
        return Path(opts.work_dir or default_work_dir(opts.config))
    device = runner_device(opts.device, distributed=opts.launcher != "none")
    cfg = build_config(opts)
    timeline.mark("config and data checks")
    if opts.launcher != "none" and device == "cuda":
        cfg.env_cfg.dist_cfg = dict(backend="nccl")
    trust = Path(cfg.load_from) if opts.trust_checkpoint and cfg.get("load_from") else None
    return run_training(cfg, device, trust=trust)


def print_config(opts: TrainOptions) -> str:
    """`cardd train --print-config`: the merged config after all options, as text.
    Nothing is checked on disk (dataset and weights need not exist) or written."""
    return describe_config(build_config(opts, check_files=False))

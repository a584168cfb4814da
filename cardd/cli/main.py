"""The `cardd` command line: parse, call one library function, map errors to exit codes.

Exit codes: 0 success, 1 a problem with the input or the environment (one
line, no traceback), 2 a command line that cannot be carried out. Heavy
imports (torch, mmdet) happen inside the commands so that `--help` is instant.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cardd import __version__
from cardd.core import options
from cardd.core.errors import CarddError, CarddUsageError
from cardd.train.runner import TrainOptions

PathArg = click.Path(path_type=Path)
ExistingFile = click.Path(path_type=Path, exists=True, dir_okay=False)


class _Location(click.ParamType):
    """A local path (a `Path`; checked like `click.Path` with `exists`) or a URL (kept as
    text, `cardd.core.storage` reads it)."""

    name = "path|url"

    def __init__(self, exists: bool = False) -> None:
        self.path = click.Path(path_type=Path, exists=exists, dir_okay=not exists)

    def convert(self, value, param, ctx):
        from cardd.core.storage import is_url, local_path

        if isinstance(value, str) and is_url(value):
            local = local_path(value)
            return value if local is None else self.path.convert(str(local), param, ctx)
        return self.path.convert(value, param, ctx)


FileOrURL = _Location(exists=True)
FolderOrURL = _Location()


# Options shared by several commands: one definition each, so defaults and help agree.
config_option = click.option(
    "--config", default="DCN_plus", show_default=True, help="Config name (configs/NAME.py) or path."
)
model_config_option = click.option(
    "--config",
    default=None,
    help="Config name or path. Default: the config inside the model file "
    "(an export's, or a training checkpoint's), else DCN_plus.",
)
checkpoint_option = click.option(
    "--checkpoint",
    default="latest",
    show_default=True,
    help="A checkpoint or `cardd export` file, or 'latest' / 'best' (the best_*.pth kept) "
    "of the work dir.",
)
model_work_dir_option = click.option(
    "--work-dir",
    type=PathArg,
    help="The training run 'latest'/'best' look in. Default: work_dirs/<config name>.",
)
data_root_option = options.DATA_ROOT.click()
data_file_option = options.DATA.click()
#: Every command that runs a model: checked by `cardd.core.devices.resolve_device`.
device_option = options.DEVICE.click()
trust_option = options.TRUST.click()

half_option = click.option(
    "--half",
    is_flag=True,
    help="Run the model in float16 (autocast) on a CUDA GPU: faster, half the memory; "
    "boxes within a pixel or two of float32's.",
)


def force_option(what: str):
    return click.option("--force", is_flag=True, help=f"Replace an existing {what}.")


def _verbosity_options() -> list[click.Option]:
    from cardd.core import logs

    def choose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if not value:
            return
        if ctx.meta.get("cardd.verbosity") not in (None, param.name):
            raise click.UsageError("pass -v/--verbose or -q/--quiet, not both")
        ctx.meta["cardd.verbosity"] = param.name
        logs.set_verbosity(logs.VERBOSE if param.name == "verbose" else logs.QUIET)

    return [
        click.Option(
            ["-v", "--verbose"], is_flag=True, expose_value=False, callback=choose,
            help="Also show mmengine's and mmdet's log lines (environment, config, weights).",
        ),
        click.Option(
            ["-q", "--quiet"], is_flag=True, expose_value=False, callback=choose,
            help="Only errors and the final line.",
        ),
    ]  # fmt: skip


class CarddGroup(click.Group):
    """Turns `CarddError` into Click's one-line errors with the right exit code, and any
    other exception into one line too (exit 1): its type and first line, and how to see
    the traceback (`CARDD_DEBUG=1`)."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Every command takes -v/--verbose and -q/--quiet (`cardd.core.logs`)."""
        cmd.params.extend(_verbosity_options())
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context):
        import os

        from cardd.core import logs

        logs.set_verbosity(logs.NORMAL)  # each command starts from the default
        logs.filter_library_warnings()
        try:
            return super().invoke(ctx)
        except CarddUsageError as error:
            raise click.UsageError(str(error)) from None  # one line, exit code 2
        except CarddError as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:
            if os.environ.get("CARDD_DEBUG", "") not in ("", "0"):
                raise
            from cardd.core.errors import one_line

            raise click.ClickException(
                f"{one_line(error)} (set CARDD_DEBUG=1 for the traceback)"
            ) from None


def _print_counts(title: str, summary: dict, names: list[str] | None = None) -> None:
    """A written dataset's counts (CarDD's classes unless `names` says otherwise)."""
    from cardd.core.console import console, counts_table
    from cardd.structures.classes import CLASSES

    console().print(counts_table(title, summary, names or CLASSES))


def _parse_size(ctx, param, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    width, sep, height = value.lower().partition("x")
    if not (
        sep
        and width.isdigit()
        and height.isdigit()
        and 64 <= int(width) <= 8192
        and 64 <= int(height) <= 8192
    ):
        raise click.BadParameter("expected WIDTHxHEIGHT, each 64..8192, e.g. 1024x768")
    return int(width), int(height)


def _finish_check(report) -> None:
    """Print a dataset check's table and problems; exit 1 when it found any."""
    from cardd.core.console import console

    console().print(report.table())
    if not report.ok:
        for line in report.problem_lines():
            click.echo(line, err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"{report.root}: ok")


@click.group(cls=CarddGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cardd")
def cli() -> None:
    """cardd: detect and segment car damage (CarDD dataset) with MMDetection 3.

    \b
    Start here:
      cardd doctor                       check the installation
      cardd demo                         the whole pipeline on toy data, on CPU
      cardd download-data                fetch the CarDD dataset into data/
      cardd download-weights             fetch the COCO-pretrained DCN model
      cardd train --config DCN_plus      the CarDD paper's best model (GPU)
      cardd infer photo.jpg              detect damage in photos
      cardd assess claim/ --damage-model M   a claim: damage by part, severity, status
      cardd train --data my-data.yaml    your own dataset and classes (cardd init-data)
      cardd serve                        the claims service: HTTP API and web page
      cardd export --out model.pth       a trained model to share (weights only)
      cardd export --out model.onnx      ... as ONNX: infer/serve without PyTorch
    """


@cli.command()
@click.option("--data-root", type=PathArg, default=Path("data/CarDD_COCO"), show_default=True)
@click.option("--weights-dir", type=PathArg, default=Path("checkpoints"), show_default=True)
def doctor(data_root: Path, weights_dir: Path) -> None:
    """Print versions and capabilities of the stack; exit 1 if it is broken."""
    from cardd.doctor import diagnose

    report = diagnose(data_root, weights_dir)
    width = max(len(name) for name, _ in report.rows)
    for name, value in report.rows:
        click.echo(f"{name:<{width}}  {value}")
    if not report.ok:
        for problem in report.problems:
            click.echo(f"problem: {problem}", err=True)
        raise click.exceptions.Exit(1)
    click.echo("ok: the stack works")


@cli.command(
    "download-data", epilog="Example: cardd download-data --zip ~/Downloads/CarDD_release.zip"
)
@click.option(
    "--zip", "zip_path", type=ExistingFile, help="A release zip already on disk (offline)."
)
@click.option("--url", help="A mirror of the release zip, instead of Google Drive.")
@click.option(
    "--dest",
    type=PathArg,
    default=Path("data"),
    show_default=True,
    help="Folder to hold CarDD_COCO/.",
)
@click.option(
    "--dataset",
    type=click.Choice(["cardd", "carparts"]),
    default="cardd",
    show_default=True,
    help="carparts: Ultralytics' Carparts-Seg (23 parts, for cardd assess --parts-model), "
    "into DEST/carparts-seg (YOLO) and DEST/carparts (COCO).",
)
@click.option("--keep-sod", is_flag=True, help="Also extract CarDD_SOD/ (unused by cardd).")
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing <dest>/CarDD_COCO (from the zip downloaded earlier, if any).",
)
@click.option(
    "--redownload", is_flag=True, help="Fetch the release zip again, then replace the dataset."
)
def download_data(
    zip_path: Path | None,
    url: str | None,
    dest: Path,
    dataset: str,
    keep_sod: bool,
    force: bool,
    redownload: bool,
) -> None:
    """Download (or take) the CarDD release zip, extract it safely, check it."""
    from cardd.data.download import download_data as run

    if dataset == "carparts":
        from cardd.data.carparts import download_carparts

        if keep_sod:
            raise click.UsageError("--keep-sod is for the CarDD release")
        report = download_carparts(dest, zip_path, url, force=force, redownload=redownload)
        if report.problems:
            click.echo(f"{len(report.problems)} bad label lines or files left out", err=True)
        click.echo(report.summary())
        click.echo(f"train a parts model: cardd train --data {report.out / 'data.yaml'}")
        return

    _finish_check(
        run(
            dest=dest,
            zip_path=zip_path,
            url=url,
            keep_sod=keep_sod,
            force=force,
            redownload=redownload,
        )  # fmt: skip
    )


@cli.command("check-data", epilog="Example: cardd check-data --root small_data/CarDD_COCO --deep")
@click.option(
    "--root",
    type=PathArg,
    default=Path("data/CarDD_COCO"),
    show_default=True,
    help="A folder in the CarDD layout (holding annotations/).",
)
@data_file_option
@click.option("--deep", is_flag=True, help="Also decode every image and compare its size.")
def check_data(root: Path, data: Path | None, deep: bool) -> None:
    """Check a dataset (a CarDD-layout folder, or --data FILE); print images and
    instances per class per split."""
    from cardd.data.check import check_dataset, check_spec

    if data is not None:
        from cardd.data.spec import load_data_file

        _finish_check(check_spec(load_data_file(data), deep=deep))
        return
    if not root.exists():
        raise CarddError(f"{root} does not exist: run `cardd download-data` or `cardd synth-data`")
    _finish_check(check_dataset(root, deep=deep))


@cli.command(
    "reduce-data", epilog="Example: cardd reduce-data --src data --dst small_data --every 10"
)
@click.option(
    "--src",
    type=PathArg,
    default=Path("data"),
    show_default=True,
    help="Folder holding the source CarDD_COCO/ (only read).",
)
@click.option(
    "--dst",
    type=PathArg,
    default=Path("small_data"),
    show_default=True,
    help="Folder to write the subset's CarDD_COCO/ into.",
)
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Keep images whose numeric file-name stem divides by N.",
)
@force_option("<dst>/CarDD_COCO")
def reduce_data(src: Path, dst: Path, every: int, force: bool) -> None:
    """Write a consistent 1-in-N subset of a dataset, for quick runs."""
    from cardd.data.reduce import reduce_dataset

    summary = reduce_dataset(src=src, dst=dst, every=every, force=force)
    _print_counts(f"kept in {dst / 'CarDD_COCO'} (1 in {every})", summary)


@cli.command("synth-data", epilog="Example: cardd synth-data --dest data/synthetic --images 24")
@click.option(
    "--dest",
    type=PathArg,
    default=Path("data/synthetic"),
    show_default=True,
    help="Folder to write CarDD_COCO/ into.",
)
@click.option("--images", type=click.IntRange(min=6), default=24, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--size",
    callback=_parse_size,
    metavar="WxH",
    help="Make every image WxH pixels (default: small, 256-352 px).",
)
@click.option(
    "--parts",
    is_flag=True,
    help="Annotate a car's parts (fender, front door, rear door, wheel) instead of the "
    "damage drawn on them: data for a parts model (cardd assess --parts-model).",
)
@force_option("<dest>/CarDD_COCO")
def synth_data(dest: Path, images: int, seed: int, size, parts: bool, force: bool) -> None:
    """Write a tiny deterministic dataset in the CarDD layout (for demos and tests)."""
    from cardd.data.synth import PART_CATEGORIES, synthesize

    summary = synthesize(dest=dest, images=images, seed=seed, force=force, size=size, parts=parts)
    names = [c["name"] for c in PART_CATEGORIES] if parts else None
    _print_counts(f"synthetic dataset in {dest / 'CarDD_COCO'}", summary, names)


@cli.command(
    "init-data",
    epilog="Example: cardd init-data ~/datasets/claims  # writes claims/cardd-data.yaml",
)
@click.argument("folder", type=PathArg)
@click.option("--out", type=PathArg, help="Where to write it. Default: FOLDER/cardd-data.yaml")
@force_option("description file")
def init_data(folder: Path, out: Path | None, force: bool) -> None:
    """Write the dataset description (--data FILE) of a folder of COCO data: the
    CarDD layout, a Roboflow COCO export, or annotations/<split>.json + images/."""
    from cardd.data.init_data import init_data as run

    spec = run(folder, out=out, force=force)
    for split, files in spec.splits.items():
        click.echo(f"{split:>5}: {files.annotations}  images {files.images}")
    click.echo(f"{spec.classes().describe()}; written to {spec.source}")


@cli.group(cls=CarddGroup)
def convert() -> None:
    """Import a dataset in another format as COCO (the source is only read)."""


@convert.command(
    "yolo",
    epilog="Example: cardd convert yolo ~/datasets/carparts-seg/data.yaml data/carparts",
)
@click.argument("source", type=click.Path(path_type=Path, exists=True))
@click.argument("out", type=PathArg)
@click.option("--skip-bad", is_flag=True, help="Leave out bad label lines (listed) and go on.")
@force_option("OUT folder")
def convert_yolo(source: Path, out: Path, skip_bad: bool, force: bool) -> None:
    """A YOLO segmentation or detection dataset (Ultralytics, Roboflow) -> COCO files
    and a dataset description in OUT; class ids kept as in its data.yaml."""
    from cardd.data.convert import ConversionFailed
    from cardd.data.convert import convert_yolo as run

    try:
        report = run(source, out, skip_bad=skip_bad, force=force)
    except ConversionFailed as failed:
        _print_problems(failed.report.problems)
        raise
    if report.problems:
        _print_problems(report.problems)
    click.echo(report.summary())
    click.echo(f"train with: cardd train --data {out / 'data.yaml'}")


def _print_problems(problems: list[str], limit: int = 20) -> None:
    for line in problems[:limit]:
        click.echo(f"  {line}", err=True)
    if len(problems) > limit:
        click.echo(f"  ... and {len(problems) - limit} more", err=True)


@cli.command("download-weights", epilog="Example: cardd download-weights --dest checkpoints")
@click.option("--dest", type=PathArg, default=Path("checkpoints"), show_default=True)
@click.option(
    "--url", help="Another address for the checkpoint (its name should carry the sha256 prefix)."
)
@click.option("--force", is_flag=True, help="Download again even if a valid file is present.")
def download_weights(dest: Path, url: str | None, force: bool) -> None:
    """Fetch the COCO-pretrained Mask R-CNN R-101 DCN checkpoint DCN+ starts from."""
    from cardd.models.pretrained import PRETRAINED_URL
    from cardd.models.pretrained import download_weights as run

    run(dest=dest, url=url or PRETRAINED_URL, force=force)


TRAIN_EPILOG = """\b
Examples:
  cardd train --config DCN_plus                      # the paper's DCN+ on a CUDA GPU
  cardd train --config DCN_plus --amp                # mixed precision
  cardd train --config DCN_plus --nproc 4            # 4 GPUs on this machine (torchrun)
  cardd train --config DCN_plus --resume             # continue the last run
  cardd train --config tiny_DCN_plus --max-epochs 2  # toy run on CPU (cardd synth-data first)
  cardd train --config DCN_plus --data my-data.yaml --from dcn_plus.pth   # your classes
  cardd train --config DCN_plus --profile-steps 5    # where an iteration's time goes
  torchrun --nnodes 2 --nproc_per_node 8 ... -m cardd train --launcher pytorch
  srun -N 2 --ntasks-per-node 8 cardd train --launcher slurm
"""


@cli.command(epilog=TRAIN_EPILOG)
@options.decorate(TrainOptions)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the merged config after all options (and the effective lr), then exit.",
)
def train(print_config: bool, **params) -> None:
    """Train a model (mmengine Runner); checkpoints and logs go to the work dir.

    The lr in a config is for its total batch of base_batch_size images (4 for
    DCN_plus) and scales linearly with the real total batch (auto_scale_lr):
    change the batch size, not the lr. The model predicts the dataset's classes:
    its annotation files' categories (ids, names, order).
    """
    from cardd.train.runner import print_config as describe
    from cardd.train.runner import train as run

    opts = options.from_params(TrainOptions, params)
    if print_config:
        click.echo(describe(opts))
        return
    out = run(opts, from_process_start=True)
    click.echo(f"training finished: checkpoints and logs in {out}")


EVAL_EPILOG = """\b
Examples:
  cardd eval --checkpoint best --work-dir work_dirs/DCN_plus --split test
  cardd eval --checkpoint model.pth --data-root data/CarDD_COCO      # a `cardd export` file
  cardd eval --results rfdetr_test.json --data-root data/CarDD_COCO --split test
  cardd eval --results preds.json --ann data/CarDD_COCO/annotations/instances_test2017.json
  cardd eval --checkpoint best --work-dir work_dirs/claims --data my-data.yaml --split val
  cardd eval --checkpoint dcn_plus.onnx --data-root data/CarDD_COCO  # onnxruntime, no PyTorch
"""


@cli.command("eval", epilog=EVAL_EPILOG)
@model_config_option
@checkpoint_option
@model_work_dir_option
@click.option(
    "--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True
)
@data_root_option
@data_file_option
@click.option(
    "--results",
    type=FileOrURL,
    help="Score this COCO results file of any model instead of running a checkpoint.",
)
@click.option(
    "--ann", type=FileOrURL, help="With --results: the ground-truth COCO JSON to score against."
)
@click.option(
    "--out", type=FolderOrURL, help="Output folder or URL. Default: runs/eval/exp, exp2, ..."
)
@device_option
@click.option("--save-coco", is_flag=True, help="Also keep the COCO-format results JSON.")
@options.SCORE_THR.click(
    help="Score threshold of the confusion matrix and the report's gallery (AP uses all)."
)
@click.option(
    "--iou-thr",
    type=click.FloatRange(0.05, 0.95),
    default=0.5,
    show_default=True,
    help="IoU at which the confusion matrix counts a match.",
)
@trust_option
def eval_(
    config,
    checkpoint,
    work_dir,
    split,
    data_root,
    data,
    results,
    ann,
    out,
    device,
    save_coco,
    score_thr,
    iou_thr,
    trust_checkpoint,
) -> None:
    """COCO box and mask AP, per class and in the CarDD paper's size bins, of a
    model or of any model's COCO results file."""
    from cardd.evaluate.runner import (
        EvalOptions,
        ResultsEvalOptions,
        evaluate,
        evaluate_results,
        print_metrics,
    )

    if sum(x is not None for x in (ann, data_root, data)) > 1:
        raise click.UsageError("--ann, --data and --data-root all name the ground truth: pass one")
    if results is not None:
        metrics, out_dir = evaluate_results(
            ResultsEvalOptions(
                results=results,
                ann=ann,
                data=data,
                data_root=data_root or Path("data/CarDD_COCO"),
                split=split,
                out=out,
                score_thr=score_thr,
                iou_thr=iou_thr,
            )
        )
        if metrics["detections"] == 0:
            click.echo(f"{results} holds no detections: every AP is 0", err=True)
    else:
        if ann is not None:
            raise click.UsageError(
                "--ann goes with --results; for a model, use --data or --data-root"
            )
        metrics, out_dir = evaluate(
            EvalOptions(
                config=config,
                checkpoint=checkpoint,
                work_dir=work_dir,
                split=split,
                data_root=data_root,
                data=data,
                out=out,
                device=device,
                save_coco=save_coco,
                trust_checkpoint=trust_checkpoint,
                score_thr=score_thr,
                iou_thr=iou_thr,
            )
        )
    from cardd.core import logs

    if logs.verbosity() >= logs.NORMAL:
        print_metrics(metrics)
    from cardd.core.storage import join

    metrics_file, report = join(out_dir, "metrics.json"), join(out_dir, "report.html")
    click.echo(f"metrics written to {metrics_file}; report: {report}")


ASSESS_EPILOG = """\b
Examples:
  cardd assess claim_1234/ --damage-model dcn_plus.pth --parts-model carparts.pth
  cardd assess a.jpg b.jpg --damage-model dcn_plus.pth --thresholds runs/eval/exp/metrics.json
  cardd assess claim/ --damage-model dcn_plus.pth --rules my_rules.yaml --out-dir runs/c1234
"""


@cli.command(epilog=ASSESS_EPILOG)
@click.argument("inputs", nargs=-1)
@click.option(
    "--claims",
    type=PathArg,
    help="A folder with one subfolder of photos per claim, instead of INPUTS: "
    "OUT/<claim>/ each, and OUT/claims.csv.",
)
@click.option("--damage-model", required=True, help="The damage model (an export or checkpoint).")
@options.PARTS_MODEL.click()
@options.PARTS_SCORE_THR.click()
@options.RULES.click()
@options.THRESHOLDS.click()
@click.option(
    "--out-dir", type=FolderOrURL, help="A folder or URL. Default: runs/assess/exp, exp2, ..."
)
@device_option
@options.SCORE_THR.click(
    default=0.1, help="Detections below this score are not assessed at all (statuses use the "
    "thresholds).",
)  # fmt: skip
@trust_option
@options.TRUST_PARTS.click()
def assess(inputs, claims, damage_model, parts_model, parts_score_thr, rules, thresholds, out_dir,
           device, score_thr, trust_checkpoint, trust_parts_model) -> None:  # fmt: skip
    """The photos of one claim: which part is damaged, how badly, what to do, how sure;
    claim.json, claim.csv and claim.html in the output folder."""
    from cardd.assess.claim import AssessOptions, claim_lines, run_assessment, run_claims

    if bool(inputs) == bool(claims):
        raise click.UsageError("pass the photos of one claim, or --claims DIR, not both")
    opts = AssessOptions(
        inputs=inputs, damage_model=damage_model, parts_model=parts_model,
        parts_score_thr=parts_score_thr, rules=rules, thresholds=thresholds, out_dir=out_dir,
        device=device, score_thr=score_thr, trust_checkpoint=trust_checkpoint,
        trust_parts_model=trust_parts_model,
    )  # fmt: skip
    if claims is not None:
        results, out = run_claims(opts, claims)
        failed = 0
        for name, claim in results:
            if isinstance(claim, str):
                failed += 1
                click.echo(f"{name}: failed: {claim}", err=True)
            else:
                click.echo(f"{name}: {claim_lines(claim)[0]}")
        click.echo(f"{len(results)} claims assessed into {out} (claims.csv)")
        if failed:
            raise click.exceptions.Exit(1)
        return
    claim, out = run_assessment(opts)
    for line in claim_lines(claim):
        click.echo(line)
    click.echo(f"claim written to {out}: claim.json, claim.csv, claim.html")


INFER_EPILOG = """\b
Examples:
  cardd infer photo.jpg
  cardd infer claims/ --recursive --score-thr 0.5 --out-dir runs/claims
  cardd infer photos/ --checkpoint model.pth                # a `cardd export` file
  cardd infer photos/ --checkpoint model.onnx               # onnxruntime, no PyTorch
  cardd infer 'photos/*.png' --checkpoint runs/demo/work_dir/epoch_12.pth
  cardd infer s3://claims/2026-12/ --checkpoint model.pth --out-dir s3://results/2026-12/
  cardd infer s3://claims/ --recursive --checkpoint model.pth --engine ray --address auto \\
      --gpus-per-worker 1 --batch-size 4 --out-dir s3://results/all/ --resume
"""


@cli.command(epilog=INFER_EPILOG)
@click.argument("inputs", nargs=-1, required=True)
@model_config_option
@checkpoint_option
@model_work_dir_option
@click.option(
    "--out-dir", help="A folder or a URL (s3://bucket/run/). Default: runs/infer/exp, exp2, ..."
)
@options.SCORE_THR.click()
@device_option
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Images per model call (on a GPU, 4-8 keep it busy).",
)
@half_option
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Local engine: threads decoding ahead of the model and writing behind it (default: "
    "cores, at most 4; 0: none). Ray engine: model actors (default: one per "
    "--gpus-per-worker GPUs, or per CPU but one).",
)
@click.option("--recursive", is_flag=True, help="Descend into sub-folders of folder inputs.")
@click.option("--no-vis", is_flag=True, help="Skip the annotated images.")
@click.option("--exist-ok", is_flag=True, help="Replace an earlier run's outputs in --out-dir.")
@click.option(
    "--resume",
    is_flag=True,
    help="Finish an interrupted run into --out-dir: keep every image whose JSON is whole "
    "(same model and threshold), run the rest.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this process; ray: a Ray cluster (pip install 'cardd[ray]').",
)
@click.option(
    "--address",
    help="Ray engine: the cluster (auto, or ray://HOST:10001). Default: a private local one.",
)
@click.option(
    "--gpus-per-worker",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Ray engine: GPUs per model actor (0: the model on CPU; 0.5: two per GPU).",
)
@trust_option
def infer(inputs, config, checkpoint, work_dir, out_dir, score_thr, device, batch_size, half,
          workers, recursive, no_vis, exist_ok, resume, engine, address, gpus_per_worker,
          trust_checkpoint) -> None:  # fmt: skip
    """Detect damage in images (files, folders, globs, URLs): annotated images, JSON, CSV."""
    from cardd.infer.local import InferOptions, run_inference

    if engine == "local" and (address is not None or gpus_per_worker):
        raise click.UsageError("--address and --gpus-per-worker go with --engine ray")
    summary = run_inference(
        InferOptions(
            inputs=inputs, config=config, checkpoint=checkpoint, work_dir=work_dir,
            out_dir=out_dir, score_thr=score_thr, device=device, batch_size=batch_size,
            half=half, workers=workers, recursive=recursive, visualize=not no_vis,
            exist_ok=exist_ok, resume=resume, trust_checkpoint=trust_checkpoint,
            engine=engine, address=address, gpus_per_worker=gpus_per_worker,
        )
    )  # fmt: skip
    click.echo(summary.line())
    if summary.failed:
        raise click.exceptions.Exit(1)


SERVE_EPILOG = """\b
Examples:
  cardd serve --checkpoint dcn_plus.pth                   # http://127.0.0.1:8000/
  cardd serve --checkpoint best --work-dir work_dirs/DCN_plus --device cuda
  CARDD_API_KEY=... cardd serve --checkpoint dcn_plus.pth --host 0.0.0.0 --port 8080
  cardd serve --checkpoint dcn_plus.pth --device cuda --replicas 4   # one per GPU
  curl -F image=@car.jpg 'http://127.0.0.1:8000/v1/detect?score_thr=0.5'
"""


@cli.command(epilog=SERVE_EPILOG)
@model_config_option
@checkpoint_option
@model_work_dir_option
@device_option
@half_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@options.SCORE_THR.click(help="Default threshold; a request may ask for another (?score_thr=).")
@click.option(
    "--api-key",
    envvar="CARDD_API_KEY",
    help="Require 'Authorization: Bearer KEY' on /v1/* (or set CARDD_API_KEY).",
)
@click.option("--max-upload-mb", type=click.FloatRange(min=0.01), default=20.0, show_default=True)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=50_000_000,
    show_default=True,
    help="Refuse larger images from their header, before decoding.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Photos at work at once (decoding, model, answer; a claim takes one per photo); "
    "more requests wait in the waiting room.",
)
@click.option(
    "--max-waiting",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Requests that may wait for a place, holding only their uploads; "
    "one more is answered 503 with Retry-After.",
)
@click.option(
    "--max-waiting-mb",
    type=click.FloatRange(min=1),
    default=256.0,
    show_default=True,
    help="Bytes of uploads the waiting requests may hold together.",
)
@click.option(
    "--save-dir", type=PathArg, help="Keep every upload and its JSON here (default: keep none)."
)
@options.PARTS_MODEL.click(help="A car-parts model for POST /v1/assess (as cardd assess).")
@options.PARTS_SCORE_THR.click()
@options.RULES.click(help="Claim rules for /v1/assess (as cardd assess).")
@options.THRESHOLDS.click(help="A `cardd eval` metrics.json for /v1/assess.")
@click.option(
    "--max-photos",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Photos one /v1/assess request may carry (each within --max-upload-mb).",
)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes behind the one port, each with its own model (one per GPU: replica k "
    "uses GPU k modulo the GPUs); a replica that dies is started again.",
)
@trust_option
@options.TRUST_PARTS.click()
def serve(
    config,
    checkpoint,
    work_dir,
    device,
    half,
    host,
    port,
    score_thr,
    api_key,
    max_upload_mb,
    max_pixels,
    max_queue,
    max_waiting,
    max_waiting_mb,
    save_dir,
    parts_model,
    parts_score_thr,
    rules,
    thresholds,
    max_photos,
    replicas,
    trust_checkpoint,
    trust_parts_model,
) -> None:
    """The claims service: an HTTP API and a web page around one model (FastAPI)."""
    from cardd.serve.run import serve as run
    from cardd.serve.service import ServeOptions

    run(
        ServeOptions(
            config=config,
            checkpoint=checkpoint,
            work_dir=work_dir,
            device=device,
            half=half,
            host=host,
            port=port,
            score_thr=score_thr,
            api_key=api_key,
            max_upload_mb=max_upload_mb,
            max_pixels=max_pixels,
            max_queue=max_queue,
            max_waiting=max_waiting,
            max_waiting_mb=max_waiting_mb,
            save_dir=save_dir,
            parts_model=parts_model,
            parts_score_thr=parts_score_thr,
            rules=rules,
            thresholds=thresholds,
            max_photos=max_photos,
            replicas=replicas,
            trust_checkpoint=trust_checkpoint,
            trust_parts_model=trust_parts_model,
        ),
        announce=click.echo,
    )


@cli.command(epilog="Example: cardd plot work_dirs/DCN_plus")
@click.argument("work_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=PathArg, help="Default: WORK_DIR/plots/training_curves.png")
def plot(work_dir: Path, out: Path | None) -> None:
    """Draw a run's training curves (losses, lr, validation AP) from its logs."""
    from cardd.visualize.plots import training_curves

    click.echo(f"training curves: {training_curves(work_dir, out)}")


EXPORT_EPILOG = """\b
Examples:
  cardd export --checkpoint best --work-dir work_dirs/DCN_plus --out dcn_plus.pth --half
  cardd export --checkpoint runs/demo/work_dir/epoch_12.pth --out tiny.pth
  cardd export --checkpoint dcn_plus.pth --out dcn_plus.onnx     # runs without PyTorch
"""


@cli.command(epilog=EXPORT_EPILOG)
@checkpoint_option
@model_config_option
@model_work_dir_option
@click.option("--out", type=PathArg, required=True, help="The file to write (*.pth or *.onnx).")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["pth", "onnx"]),
    help="pth: PyTorch weights; onnx: one ONNX graph for onnxruntime (cardd infer/serve run "
    "it without PyTorch). Default: from --out's suffix.",
)
@click.option("--half", is_flag=True, help="Store the weights in fp16: half the size (pth).")
@trust_option
@force_option("--out file")
def export(checkpoint, config, work_dir, out, format_, half, trust_checkpoint, force) -> None:
    """Write a model file to share: weights, config, classes, versions, metrics; it
    loads with torch.load(weights_only=True) and runs no code. With --format onnx,
    an ONNX graph checked against PyTorch before it is written."""
    from cardd.export.run import ExportOptions, export_model

    result = export_model(
        ExportOptions(
            out=out,
            checkpoint=checkpoint,
            config=config,
            work_dir=work_dir,
            half=half,
            trust_checkpoint=trust_checkpoint,
            force=force,
            format=format_,
        )
    )
    epoch = f", epoch {result.epoch}" if result.epoch is not None else ""
    if result.check:
        check = result.check
        click.echo(
            f"checked with onnxruntime against PyTorch: {check['detections']} detections, "
            f"boxes within {check['max_box_px']:.2g} px, scores within {check['max_score']:.2g}"
        )
    click.echo(
        f"exported {result.source}{epoch} -> {result.path} ({result.size_bytes / 1e6:.1f} MB)"
    )
    click.echo(f"sha256 {result.sha256}")


@cli.command()
@click.option("--out", type=PathArg, help="Run folder. Default: runs/demo, runs/demo2, ...")
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--images", type=click.IntRange(min=6), default=24, show_default=True)
def demo(out, epochs, images) -> None:
    """The whole pipeline on toy data on CPU: synth-data, train, eval, infer."""
    from cardd.core import logs
    from cardd.demo import DISCLAIMER, run_demo

    result = run_demo(out=out, epochs=epochs, images=images)
    if logs.verbosity() == logs.QUIET:
        click.echo(f"demo finished in {result.run_dir}")
        return
    click.echo("")
    click.echo(f"demo finished in {result.run_dir}:")
    click.echo(f"  checkpoints   {result.work_dir}")
    click.echo(f"  curves        {result.work_dir / 'plots' / 'training_curves.png'}")
    click.echo(f"  metrics       {result.eval_dir / 'metrics.json'}")
    click.echo(f"  report        {result.eval_dir / 'report.html'}")
    click.echo(f"  annotated     {result.infer_dir / 'vis'} ({result.detections} detections)")
    click.echo(f"  index         {result.infer_dir / 'index.html'}")
    click.echo(
        f"  JSON / CSV    {result.infer_dir / 'preds'}, {result.infer_dir / 'predictions.csv'}"
    )
    click.echo(DISCLAIMER)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="cardd")  # CarddGroup.invoke filters library warnings first


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

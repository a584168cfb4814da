"""Models: `cardd train`, `eval`, `export`, `plot`."""

from __future__ import annotations

from pathlib import Path

import click

from cardd.core import options
from cardd.evaluate.options import EvalOptions
from cardd.export.options import ExportOptions
from cardd.train.options import TrainOptions

PathArg = click.Path(path_type=Path)


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


@click.command(epilog=TRAIN_EPILOG)
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


@click.command("eval", epilog=EVAL_EPILOG)
@options.decorate(EvalOptions)
def eval_(**params) -> None:
    """COCO box and mask AP, per class and in the CarDD paper's size bins, of a
    model or of any model's COCO results file."""
    from cardd.core import logs
    from cardd.core.storage import join
    from cardd.evaluate.common import print_metrics
    from cardd.evaluate.runner import run_eval

    opts = options.from_params(EvalOptions, params)
    result = run_eval(opts)
    metrics, out_dir = result.metrics, result.out
    if opts.results is not None and metrics["detections"] == 0:
        click.echo(f"{opts.results} holds no detections: every AP is 0", err=True)
    if logs.verbosity() >= logs.NORMAL:
        print_metrics(metrics)
    metrics_file, report = join(out_dir, "metrics.json"), join(out_dir, "report.html")
    click.echo(f"metrics written to {metrics_file}; report: {report}")


@click.command(epilog="Example: cardd plot work_dirs/DCN_plus")
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


@click.command(epilog=EXPORT_EPILOG)
@options.decorate(ExportOptions)
def export(**params) -> None:
    """Write a model file to share: weights, config, classes, versions, metrics; it
    loads with torch.load(weights_only=True) and runs no code. With --format onnx,
    an ONNX graph checked against PyTorch before it is written."""
    from cardd.export.run import export_model

    result = export_model(options.from_params(ExportOptions, params))
    epoch = f", epoch {result.epoch}" if result.epoch is not None else ""
    if result.check:
        check = result.check
        tied = (f" ({check['tied']} at or below tied scores, which either engine may rank "
                "either way)" if check.get("tied") else "")  # fmt: skip
        click.echo(
            f"checked with onnxruntime against PyTorch: {check['detections']} detections{tied}, "
            f"boxes within {check['max_box_px']:.2g} px, scores within {check['max_score']:.2g}"
        )
    click.echo(
        f"exported {result.source}{epoch} -> {result.path} ({result.size_bytes / 1e6:.1f} MB)"
    )
    click.echo(f"sha256 {result.sha256}")


COMMANDS = (train, eval_, export, plot)

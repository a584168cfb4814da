"""`cardd demo`: the whole pipeline on a built-in toy example, on CPU, in minutes.

synth-data -> train `tiny_DCN_plus` -> eval -> infer, all inside one new run
folder (`runs/demo`, `runs/demo2`, ...), so it needs no dataset, no weights and
no GPU, and never touches an earlier run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardd.core import options
from cardd.core.options import Option

#: The toy model learns little in 12 epochs on 24 synthetic photos: its scores stay below
#: about 0.25 (focal loss), so the demo draws what scores 0.1 or more; a real model's
#: default is 0.3.
DEMO_SCORE_THR = 0.1

DISCLAIMER = (
    "The demo model is a check of the whole pipeline on synthetic shapes, not a damage "
    "detector. For the real one: `cardd download-data`, `cardd download-weights`, then "
    "`cardd train --config DCN_plus` on a CUDA GPU."
)


@dataclass
class DemoOptions:
    """Everything `cardd demo` takes, each option declared once (`cardd.core.options`)."""

    out: Path | None = Option(
        "--out", "Run folder. Default: runs/demo, runs/demo2, ...", "path"
    ).field()
    epochs: int = Option("--epochs", "Training epochs.", "int", 12, low=1).field()
    images: int = Option("--images", "Synthetic photos to make.", "int", 24, low=6).field()
    seed: int = Option("--seed", "Random seed of the data and the training.", "int", 0).field()
    exist_ok: bool = options.EXIST_OK.field()


def demo_run():
    """`cardd demo`'s run folders (`cardd.core.runs`): runs/demo, runs/demo2, ...; made
    here, not at import: the command line imports this module for `--help`."""
    from cardd.core.runs import OPTIONS_FILE, RunKind

    return RunKind(
        command="demo",
        flag="--out",
        marks=frozenset({OPTIONS_FILE}),
        outputs=("data", "work_dir", "eval", "infer", OPTIONS_FILE),
        parent=Path("runs"),
        stem="demo",
    )


@dataclass
class DemoResult:
    run_dir: Path
    work_dir: Path
    metrics: dict
    eval_dir: Path
    infer_dir: Path
    detections: int


def run_demo(opts: DemoOptions | None = None) -> DemoResult:
    """Run the pipeline end to end; returns where everything went."""
    from cardd.core import logs
    from cardd.core.runs import save_options
    from cardd.data.synth import synthesize
    from cardd.evaluate.common import print_metrics
    from cardd.evaluate.options import EvalOptions
    from cardd.evaluate.runner import evaluate
    from cardd.infer.local import run_inference
    from cardd.infer.options import InferOptions
    from cardd.train.options import TrainOptions
    from cardd.train.runner import train

    opts = opts or DemoOptions()
    epochs, images, seed = opts.epochs, opts.images, opts.seed
    run_dir = demo_run().open(opts.out, opts.exist_ok).local
    save_options(run_dir, opts, out=str(run_dir))  # where it went, when not asked
    data_root = run_dir / "data" / "CarDD_COCO"
    logs.say(f"[1/4] synthesizing {images} images into {data_root}")
    synthesize(run_dir / "data", images=images, seed=seed)
    logs.say(f"[2/4] training tiny_DCN_plus for {epochs} epochs on CPU")
    work_dir = train(
        TrainOptions(
            config="tiny_DCN_plus",
            work_dir=run_dir / "work_dir",
            data_root=data_root,
            device="cpu",
            max_epochs=epochs,
            seed=seed,
        )
    )
    checkpoint = work_dir / f"epoch_{epochs}.pth"
    logs.say("[3/4] evaluating on the test split")
    evaluation = evaluate(
        EvalOptions(
            config="tiny_DCN_plus",
            checkpoint=str(checkpoint),
            split="test",
            data_root=data_root,
            out=run_dir / "eval",
            device="cpu",
        )
    )
    metrics, eval_dir = evaluation.metrics, evaluation.out
    if logs.verbosity() >= logs.NORMAL:
        print_metrics(metrics)
    logs.say(f"[4/4] inference on the test images (--score-thr {DEMO_SCORE_THR}: a toy model)")
    summary = run_inference(
        InferOptions(
            inputs=(str(data_root / "test2017"),),
            config="tiny_DCN_plus",
            checkpoint=str(checkpoint),
            out_dir=run_dir / "infer",
            device="cpu",
            score_thr=DEMO_SCORE_THR,
        )
    )
    return DemoResult(run_dir, work_dir, metrics, eval_dir, summary.out_dir, summary.detections)

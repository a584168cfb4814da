"""Photos in, findings out: `cardd infer`, `assess`, `serve`."""

from __future__ import annotations

import click

from cardd.assess.options import AssessOptions
from cardd.core import options
from cardd.infer.options import InferOptions
from cardd.serve.options import ServeOptions

ASSESS_EPILOG = """\b
Examples:
  cardd assess claim_1234/ --damage-model dcn_plus.pth --parts-model carparts.pth
  cardd assess a.jpg b.jpg --damage-model dcn_plus.pth --thresholds runs/eval/exp/metrics.json
  cardd assess claim/ --damage-model dcn_plus.pth --rules my_rules.yaml --out-dir runs/c1234
"""


@click.command(epilog=ASSESS_EPILOG)
@click.argument("inputs", nargs=-1)
@options.decorate(AssessOptions)
def assess(inputs, **params) -> None:
    """The photos of one claim: which part is damaged, how badly, what to do, how sure;
    claim.json, claim.csv and claim.html in the output folder."""
    from cardd.assess.claim import claim_lines
    from cardd.assess.run import run_assessment, run_claims

    opts = options.from_params(AssessOptions, params, inputs=inputs)
    if bool(opts.inputs) == bool(opts.claims):
        raise click.UsageError("pass the photos of one claim, or --claims DIR, not both")
    if opts.claims is not None:
        results, out = run_claims(opts, opts.claims)
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


@click.command(epilog=INFER_EPILOG)
@click.argument("inputs", nargs=-1, required=True)
@options.decorate(InferOptions)
def infer(inputs, **params) -> None:
    """Detect damage in images (files, folders, globs, URLs): annotated images, JSON, CSV."""
    from cardd.infer.local import run_inference

    summary = run_inference(options.from_params(InferOptions, params, inputs=inputs))
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


@click.command(epilog=SERVE_EPILOG)
@options.decorate(ServeOptions)
def serve(**params) -> None:
    """The claims service: an HTTP API and a web page around one model (FastAPI)."""
    from cardd.serve.run import serve as run

    run(options.from_params(ServeOptions, params), announce=click.echo)


COMMANDS = (infer, assess, serve)

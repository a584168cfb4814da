"""The `cardd` command line: parse, call one library function, map errors to exit codes.

Exit codes: 0 success, 1 a problem with the input or the environment (one
line, no traceback), 2 a command line that cannot be carried out. Heavy
imports (torch, mmdet) happen inside the commands so that `--help` is instant.
"""

from __future__ import annotations

import sys

import click

from cardd import __version__
from cardd.cli import data, model, predict, tools
from cardd.cli.group import CarddGroup


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


for family in (data, model, predict, tools):
    for command in family.COMMANDS:
        cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="cardd")  # CarddGroup.invoke filters library warnings first


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

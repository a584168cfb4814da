"""Running `cardd serve`: the address checked, uvicorn, and replicas behind one port."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cardd.core.errors import CarddError, CarddUsageError
from cardd.core.files import write_file
from cardd.serve.app import create_app
from cardd.serve.options import ServeOptions
from cardd.serve.service import Service

if TYPE_CHECKING:
    from fastapi import FastAPI

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_address(host: str, port: int) -> None:
    """Fail at once, in one line, when `host:port` cannot be listened on."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise CarddError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def _api_key(options: ServeOptions) -> str | None:
    return options.api_key or os.environ.get("CARDD_API_KEY") or None


def serve(options: ServeOptions, announce=print) -> None:
    """Load the model, then serve until Ctrl-C or SIGTERM; returns after a graceful
    shutdown (in-flight requests finish, for at most 5 seconds). With `replicas` > 1,
    `serve_replicas` instead."""
    import uvicorn

    if not 0 < options.port < 65536:
        raise CarddUsageError(f"--port must be 1..65535, got {options.port}")
    if options.replicas < 1:
        raise CarddUsageError(f"--replicas must be >= 1, got {options.replicas}")
    _check_address(options.host, options.port)  # before minutes of model loading
    options.api_key = _api_key(options)
    if options.replicas > 1:
        serve_replicas(options, announce)
        return
    service = Service(options)
    detector = service.detector
    app = create_app(service)
    config = uvicorn.Config(app, **_uvicorn_settings(options))
    server = uvicorn.Server(config)
    _announce(options, f"{detector.checkpoint} on {detector.device}", announce)
    # uvicorn re-raises the signal that stopped it once it has shut down; a handler
    # that ignores it makes that a normal return (exit 0) rather than a kill.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        raise CarddError(
            f"could not listen on {options.host}:{options.port} (in use, or not this machine's)"
        ) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise CarddError(f"could not listen on {options.host}:{options.port}")


def _uvicorn_settings(options: ServeOptions) -> dict:
    return dict(
        host=options.host, port=options.port, log_level="warning",
        timeout_graceful_shutdown=5, limit_concurrency=256,
    )  # fmt: skip


def _announce(options: ServeOptions, what: str, announce) -> None:
    if options.host not in LOOPBACK and not options.api_key:
        announce(
            f"warning: serving on {options.host} without an API key: anyone who can reach "
            "this machine can use the model (set --api-key or CARDD_API_KEY)"
        )
    shown = f"[{options.host}]" if ":" in options.host else options.host
    announce(f"cardd serve: {what}")
    announce(f"open http://{shown}:{options.port}/  (API schema: /openapi.json; Ctrl-C to stop)")


#: How `serve_replicas` hands its options to the replica processes uvicorn starts.
REPLICA_OPTIONS_ENV = "CARDD_SERVE_REPLICA_OPTIONS"
_PATH_FIELDS = ("work_dir", "save_dir", "rules", "thresholds")


def serve_replicas(options: ServeOptions, announce=print) -> None:
    """`options.replicas` processes behind one port (uvicorn's process manager: they
    share the listening socket, the kernel hands each new connection to one of them,
    and a replica that dies is started again). Each loads its own model; with several
    GPUs, replica k uses GPU k modulo their number.

    Everything a replica will load is checked here first (the models, `.pth` or
    `.onnx`, the rules and thresholds against the damage model), so a bad file fails
    once, in one line, before any replica starts. The settings (the API key among
    them) reach the replicas in a file of a private folder, never in the environment.
    A replica that cannot start anyway leaves its reason there, and the service stops
    with that line and exit 1 instead of starting it again forever.
    """
    import dataclasses
    import json
    import shutil
    import tempfile
    import threading

    import uvicorn

    check_models(options)
    slots = tempfile.mkdtemp(prefix="cardd-serve-replicas-")  # 0700: this user's only
    settings = {
        k: (str(v) if k in _PATH_FIELDS and v is not None else v)
        for k, v in dataclasses.asdict(options).items()
    }
    settings_file = Path(slots) / "options.json"
    write_file(settings_file, json.dumps({**settings, "slots": slots}))
    settings_file.chmod(0o600)
    os.environ[REPLICA_OPTIONS_ENV] = str(settings_file)
    failed = Path(slots) / "failed.txt"
    stop = threading.Event()

    def stop_on_failure() -> None:  # uvicorn's supervisor would restart it forever
        while not stop.wait(0.2):
            if failed.exists():
                os.kill(os.getpid(), signal.SIGTERM)
                return

    watcher = threading.Thread(target=stop_on_failure, daemon=True)
    _announce(options, f"{options.checkpoint}, {options.replicas} replicas", announce)
    try:
        watcher.start()
        uvicorn.run(
            "cardd.serve.run:replica_app", factory=True, workers=options.replicas,
            **_uvicorn_settings(options),
        )  # fmt: skip
        if failed.exists():
            raise CarddError(f"a replica could not start: {failed.read_text().strip()}")
    finally:
        stop.set()
        os.environ.pop(REPLICA_OPTIONS_ENV, None)
        shutil.rmtree(slots, ignore_errors=True)


def check_models(options: ServeOptions) -> None:
    """Open the damage and parts models (then drop them) and check the claim rules and
    thresholds against the damage model's classes, as each replica will.

    Raises:
        CarddError: the first problem, in one line.
    """
    from cardd.assess.rules import load_rules, thresholds_from_metrics
    from cardd.detector.onnx_backend import OnnxModel, check_options, is_onnx_model

    def classes_of(checkpoint, trust: bool, config=None):
        if is_onnx_model(checkpoint):
            check_options(config, options.half)
            return OnnxModel(Path(checkpoint), device="cpu").classes
        from cardd.models.model_file import open_model

        model_file = open_model(config, checkpoint, options.work_dir, trust)
        model_file.release()
        return model_file.classes

    names = classes_of(options.checkpoint, options.trust_checkpoint, options.config).names
    load_rules(options.rules).for_model(names, options.rules is not None)
    if options.thresholds:
        thresholds_from_metrics(options.thresholds, names)
    if options.parts_model:
        classes_of(options.parts_model, options.trust_parts_model)


def claim_replica_slot(slots: str, replicas: int) -> int:
    """The lowest replica number no living replica holds: a lock on its file, held for
    the process's life and freed by the kernel when it dies, so a replica started
    again takes the place (and GPU) of the one it replaces."""
    import fcntl

    while True:
        for index in range(replicas):
            handle = open(Path(slots) / f"replica-{index}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held_slots.append(handle)
            return index
        time.sleep(0.2)  # a replica that is shutting down still holds its place


_held_slots: list = []


def _gpu_count(checkpoint) -> int:
    """GPUs PyTorch sees, for a PyTorch model. An ONNX model's replica imports no torch
    (it would cost each replica PyTorch's memory and start-up) and onnxruntime counts no
    GPUs: its replicas share the first GPU unless CUDA_VISIBLE_DEVICES differs."""
    from cardd.detector.onnx_backend import is_onnx_model

    if is_onnx_model(checkpoint):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def replica_app() -> FastAPI:
    """One replica's app: uvicorn calls this in each process `serve_replicas` starts."""
    import json

    settings = json.loads(Path(os.environ[REPLICA_OPTIONS_ENV]).read_text())
    slots = settings.pop("slots")
    for key in _PATH_FIELDS:
        if settings[key] is not None:
            settings[key] = Path(settings[key])
    options = ServeOptions(**settings)
    index = claim_replica_slot(slots, options.replicas)
    try:
        if options.device in ("auto", "cuda"):
            gpus = _gpu_count(options.checkpoint)
            if gpus > 1:
                options.device = f"cuda:{index % gpus}"
        service = Service(options)
    except Exception as error:  # tell the supervisor (serve_replicas), which stops all
        from cardd.core.errors import one_line

        reason = str(error) if isinstance(error, CarddError) else one_line(error)
        write_file(Path(slots) / "failed.txt", f"replica {index}: {reason}\n")
        raise SystemExit(1) from None
    service.replica = index
    return create_app(service)

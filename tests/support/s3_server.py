"""A real S3-compatible server for the object-storage tests (moto's standalone server, a
process of its own), and a proxy in front of it that cuts uploads half-way."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

#: The environment cardd reads S3 from: botocore's usual variables, nothing cardd-specific.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server(log: Path, check_credentials: bool = False) -> Iterator[str]:
    """`moto_server` on loopback; yields its endpoint URL. With `check_credentials`, every
    request must carry keys the server knows (none do: every request is refused)."""
    port = free_port()
    env = {**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if check_credentials else {})}
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p",
             str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(30)


def filesystem(endpoint: str):
    """s3fs on the server, for the tests' own uploads and checks."""
    import s3fs

    return s3fs.S3FileSystem(
        key=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=endpoint, skip_instance_cache=True, use_listings_cache=False,
    )  # fmt: skip


def environment(endpoint: str) -> dict:
    """What a cardd process needs to reach the server: the usual AWS variables."""
    return {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}


class CuttingProxy:
    """A TCP proxy to `upstream` that forwards everything, except that an upload (`PUT`)
    whose request line holds `marker` gets its headers and `keep` bytes through and
    then both connections are closed: an upload interrupted half-way, every time."""

    def __init__(self, upstream: str, marker: bytes, keep: int = 200) -> None:
        host, port = upstream.rsplit("//", 1)[1].split(":")
        self.upstream = (host, int(port))
        self.marker, self.keep = marker, keep
        self.cut = 0  # uploads cut so far
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)

        def back() -> None:
            with contextlib.suppress(OSError):
                while data := server.recv(65536):
                    client.sendall(data)
            with contextlib.suppress(OSError):
                client.close()

        threading.Thread(target=back, daemon=True).start()
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                first_line = data.split(b"\r\n", 1)[0]
                if first_line.startswith(b"PUT ") and self.marker in first_line:
                    head, _, body = data.partition(b"\r\n\r\n")
                    server.sendall(head + b"\r\n\r\n" + body[: self.keep])
                    self.cut += 1
                    break
                server.sendall(data)
        for end in (client, server):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
                end.close()

    def close(self) -> None:
        self.listener.close()

"""Local servers for the scale tests, started on 127.0.0.1 on free ports as subprocesses.

- :func:`moto_s3`: an S3 emulator (``moto.server``), with the storage options that reach it;
- :func:`dask_cluster`: a real ``dask scheduler`` and ``dask worker`` processes (the command line a
  user runs), yielding the scheduler address.

Each stops its processes (by their own process ids) on exit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on {port}")
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextmanager
def moto_s3() -> Iterator[dict[str, str]]:
    """A moto S3 server; yields the polars storage options that reach it (endpoint and test credentials)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, 30, "moto server")
        yield {"aws_endpoint_url": f"http://{HOST}:{port}", "aws_access_key_id": "testing",
               "aws_secret_access_key": "testing", "aws_region": "us-east-1", "aws_allow_http": "true"}
    finally:
        _stop([proc])


def _dask_exe() -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    return [str(exe)] if exe.exists() else [shutil.which("dask") or "dask"]


@contextmanager
def dask_cluster(n_workers: int = 1, log_dir: Path | None = None) -> Iterator[str]:
    """``dask scheduler`` and ``n_workers`` ``dask worker`` processes (1 thread each); yields ``tcp://HOST:PORT``."""
    port = free_port()
    address = f"tcp://{HOST}:{port}"
    repo = str(Path(__file__).resolve().parents[2])  # the workers import the fentan being tested
    env = {**os.environ, "POLARS_MAX_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)}
    out = (lambda name: open(log_dir / name, "wb")) if log_dir else (lambda name: subprocess.DEVNULL)  # noqa: E731
    procs = [subprocess.Popen([*_dask_exe(), "scheduler", "--host", HOST, "--port", str(port),
                               "--no-dashboard"],
                              stdout=out("scheduler.log"), stderr=subprocess.STDOUT, env=env)]
    try:
        _wait_port(port, procs[0], 60, "dask scheduler")
        for i in range(n_workers):
            procs.append(subprocess.Popen([*_dask_exe(), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                           "--host", HOST, "--no-dashboard"],
                                          stdout=out(f"worker-{i}.log"), stderr=subprocess.STDOUT, env=env))
        from distributed import Client

        with Client(address, timeout=60) as client:  # the workers joined (slow on a loaded machine)
            client.wait_for_workers(n_workers, timeout=180)
        yield address
    finally:
        _stop(procs)

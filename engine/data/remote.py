"""Remote input paths (``s3://``, ``gs://``, ``hdfs://``...): storage options, the pyarrow filesystem, listing.

A path whose text starts with a scheme (``s3://bucket/members/``) is remote. It is listed with
``pyarrow.fs`` under the same Hive/Spark rules as a local path (:mod:`engine.data.listing`) and its
Parquet files are read by polars (``pl.scan_parquet(uri, storage_options=...)``), which is what
reads them: ``s3://`` (also S3-compatible stores: MinIO, Ceph, OSS through an endpoint),
``gs://``, ``az://``/``abfs://``; ``hdfs://`` is listed by pyarrow (libhdfs) and read as far as
polars reads it.

Storage options are polars' (``object_store``) keys, e.g. ``aws_endpoint_url``,
``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``, ``aws_region``,
``aws_allow_http``. They come from, in order of precedence, the ``storage_options`` given
(``[data] storage_options`` of a run configuration) and the environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` or
``AWS_DEFAULT_REGION``, ``AWS_ALLOW_HTTP``). Remote CSV files are not read: convert them to Parquet.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from engine.errors import ConfigError, InputFileError, first_line

__all__ = ["is_remote", "storage_options", "filesystem", "split_uri", "file_size", "parquet_metadata"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
#: environment variable -> storage option (S3 and S3-compatible stores)
_ENV_S3 = {
    "AWS_ENDPOINT_URL": "aws_endpoint_url",
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_DEFAULT_REGION": "aws_region",
    "AWS_REGION": "aws_region",  # after AWS_DEFAULT_REGION: it wins when both are set
    "AWS_ALLOW_HTTP": "aws_allow_http",
}
#: short aliases accepted in a configuration -> the polars key
_ALIASES = {"endpoint_url": "aws_endpoint_url", "access_key_id": "aws_access_key_id",
            "secret_access_key": "aws_secret_access_key", "session_token": "aws_session_token",
            "region": "aws_region", "allow_http": "aws_allow_http"}


def is_remote(path: Any) -> bool:
    """True for a path text with a scheme other than ``file://`` (``s3://bucket/key``)."""
    if not isinstance(path, str):
        return False
    m = _SCHEME.match(path)
    return m is not None and m.group(1).lower() != "file"


def split_uri(uri: str) -> tuple[str, str]:
    """``("s3", "bucket/key")``: the scheme and the path below it (no trailing ``/``)."""
    m = _SCHEME.match(uri)
    if m is None:
        raise InputFileError(f"{uri}: not a remote path (expected scheme://...)")
    return m.group(1).lower(), uri[m.end():].rstrip("/")


def storage_options(uri: str, given: dict[str, Any] | None = None) -> dict[str, str]:
    """The polars storage options of ``uri``: the environment's, updated by ``given`` (all values text).

    Raises
    ------
    ConfigError
        A value in ``given`` that is not text, a number or a boolean.
    """
    scheme = split_uri(uri)[0]
    out: dict[str, str] = {}
    if scheme in ("s3", "s3a"):
        for env, key in _ENV_S3.items():
            if os.environ.get(env):
                out[key] = os.environ[env]
        if out.get("aws_endpoint_url", "").startswith("http://"):
            out.setdefault("aws_allow_http", "true")
    for k, v in (given or {}).items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        if not isinstance(v, (str, int, float)):
            raise ConfigError(f"storage_options.{k}: expected text, got {type(v).__name__}")
        out[_ALIASES.get(k, k)] = str(v)
    if out.get("aws_endpoint_url", "").startswith("http://"):
        out.setdefault("aws_allow_http", "true")
    return out


def filesystem(uri: str, options: dict[str, str]) -> tuple[Any, str]:
    """The ``pyarrow.fs`` filesystem of ``uri`` and the path in it (the options mapped onto pyarrow's).

    One filesystem is built per store root (scheme and bucket or host) and options, then reused
    (:data:`_STORES`): the memory guard and the run record read the footer and size of every file
    of a directory through one.

    Raises
    ------
    InputFileError
        pyarrow cannot open that kind of store (one line naming the path).
    """
    scheme, path = split_uri(uri)
    root, _, rest = path.partition("/")
    key = (scheme, root, tuple(sorted(options.items())))
    with _STORES_LOCK:
        hit = _STORES.get(key)
        if hit is None:
            try:
                fs, inner = _open(scheme, options, uri)
            except (OSError, ValueError, ImportError) as exc:
                raise InputFileError(f"{uri}: cannot open the store ({first_line(exc)})") from None
            if rest and inner.endswith(rest):  # a path below the root is this prefix + its part after the root
                _STORES[key] = (fs, inner[:len(inner) - len(rest)])
            return fs, inner
    fs, prefix = hit
    return fs, (prefix + rest if rest else prefix).rstrip("/")


#: ``(scheme, bucket or host, options) -> (filesystem, prefix)``: the stores built (see :func:`filesystem`)
_STORES: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[Any, str]] = {}
_STORES_LOCK = threading.Lock()


def _open(scheme: str, opts: dict[str, str], uri: str) -> tuple[Any, str]:
    """Build the ``pyarrow.fs`` filesystem of ``uri`` (an S3 store from ``opts``) and the path in it."""
    import pyarrow.fs as pafs

    if scheme in ("s3", "s3a"):
        kw: dict[str, Any] = {}
        endpoint = opts.get("aws_endpoint_url")
        if endpoint:
            m = _SCHEME.match(endpoint)
            kw["endpoint_override"] = endpoint[m.end():] if m else endpoint
            kw["scheme"] = m.group(1).lower() if m else "https"
        for ours, theirs in (("aws_access_key_id", "access_key"), ("aws_secret_access_key", "secret_key"),
                             ("aws_session_token", "session_token"), ("aws_region", "region")):
            if opts.get(ours):
                kw[theirs] = opts[ours]
        return pafs.S3FileSystem(**kw), split_uri(uri)[1]
    fs, inner = pafs.FileSystem.from_uri(uri)
    return fs, inner.rstrip("/")


def file_size(file: Any, given: dict[str, Any] | None = None) -> int:
    """Size in bytes of one listed data file, local (a path) or remote (a URI, with its storage options)."""
    if is_remote(file):
        fs, path = filesystem(file, storage_options(file, given))
        return int(fs.get_file_info(path).size or 0)
    return os.stat(file).st_size


def parquet_metadata(file: Any, given: dict[str, Any] | None = None) -> Any:
    """The ``pyarrow.parquet.FileMetaData`` of one Parquet file (its footer only), local or remote."""
    import pyarrow.parquet as pq

    if is_remote(file):
        fs, path = filesystem(file, storage_options(file, given))
        return pq.read_metadata(path, filesystem=fs)
    return pq.read_metadata(file)

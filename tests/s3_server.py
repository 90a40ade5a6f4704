"""A real S3-compatible HTTP server on the loopback address (moto's `moto_server`), on a free port,
with a bucket, for the tests that store sweeps in object storage; stopped by its own process."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.ray_nodes import free_ports

BUCKET = "losstune-runs"
# moto accepts any key pair; without one, pyarrow's client is refused as an anonymous one would be
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    def __init__(self, port: int, process: subprocess.Popen):
        self.port, self.process = port, process

    def uri(self, path: str = "runs") -> str:
        """The store as a pyarrow URI with its options in the query, the form Ray documents for
        S3-compatible stores."""
        return f"s3://{BUCKET}/{path}?endpoint_override=127.0.0.1:{self.port}&scheme=http&region=us-east-1"


def start_s3_server(log: Path) -> S3Server:
    (port,) = free_ports(1)
    server = str(Path(sys.executable).parent / "moto_server")
    process = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                raise AssertionError(f"moto_server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    import boto3

    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", **{
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    ).create_bucket(Bucket=BUCKET)
    return S3Server(port, process)


def stop_s3_server(server: S3Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


def with_credentials(env: dict | None = None) -> dict:
    return dict(os.environ if env is None else env, **CREDENTIALS)

"""A throwaway moto_server (a fake EC2/IAM) on loopback, with IAM authentication on.

Usage in a test module (or a conftest)::

    from tests.support.moto import MotoServer, moto_server  # noqa: F401  (the fixture)

    def test_x(moto_server: MotoServer) -> None:
        settings = moto_server.settings(ami=moto_server.ami)   # aws provider settings
        ec2 = moto_server.ec2()                                # boto3, good credentials

or, without pytest, ``with MotoServer() as moto: ...``.

The server listens on 127.0.0.1 only, on a free port, and nothing else is contacted: the
clients it makes have the endpoint and credentials set explicitly. It runs with
``MOTO_ENABLE_AMI_VALIDATION`` (RunInstances of an unknown AMI fails as on AWS) and with
IAM authentication: ``INITIAL_NO_AUTH_ACTION_COUNT=3`` lets the first three requests in
without a signature check, and they make an IAM user with an allow-all inline policy and
an access key (:attr:`MotoServer.access_key_id`, :attr:`MotoServer.secret_access_key`).
Every later request must be signed with that key: any other key gets moto's
``AuthFailure`` ("AWS was not able to validate the provided access credentials"), as AWS
answers a wrong key. :meth:`MotoServer.reset` empties every backend (IAM too) and arms the
credentials again through moto's ``/moto-api/reset-auth``, so they change.

The server is killed by its pid (its own process group) in :meth:`MotoServer.stop`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import boto3
import pytest
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

__all__ = ["AUTH_REQUESTS", "REGION", "MotoServer", "MotoServerError", "moto_server"]

HOST = "127.0.0.1"
REGION = "us-east-1"
USER = "edgecloud-test"
# The unauthenticated requests: CreateUser, PutUserPolicy, CreateAccessKey.
AUTH_REQUESTS = 3
_ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
_START_TIMEOUT = 30.0
EXAMPLE_AMI = "ami-12c6146b"  # in moto's built-in images (moto.ec2 tests use it)
# Only loopback: no proxy, no shared AWS config, no instance metadata service.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MotoServerError(RuntimeError):
    """moto_server could not be started or armed."""


class MotoServer:
    """One moto_server process; see the module's docstring."""

    def __init__(self, *, region: str = REGION) -> None:
        self.region = region
        self.port = 0
        self.access_key_id = ""
        self.secret_access_key = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server on a free port, wait until it answers, arm the credentials."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.lower().endswith("_proxy") and not key.startswith("AWS_")
        }
        env.update(
            INITIAL_NO_AUTH_ACTION_COUNT=str(AUTH_REQUESTS),
            MOTO_ENABLE_AMI_VALIDATION="true",
            AWS_EC2_METADATA_DISABLED="true",
        )
        for _ in range(3):  # the free port may be taken before the server binds it
            self.port = _free_port()
            fd, log = tempfile.mkstemp(prefix="edgecloud-moto-", suffix=".log")
            self._log = Path(log)
            with os.fdopen(fd, "wb") as out:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            if self._wait_ready():
                break
            self.stop()
        else:
            raise MotoServerError("moto_server did not start on 127.0.0.1 (three tries)")
        try:
            self._arm()
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill the server (its process group, by pid) and wait for it; remove its log."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Empty every backend (IAM included) and arm new credentials."""
        self._post("/moto-api/reset", b"")
        self._arm()

    # --- what tests use ----------------------------------------------------------------

    def ec2(self, *, good: bool = True) -> EC2Client:
        """A boto3 EC2 client of this server (with wrong credentials unless `good`)."""
        key, secret = (
            (self.access_key_id, self.secret_access_key)
            if good
            else ("AKIAWRONGWRONGWRONG0", "wrong-secret")
        )
        return boto3.session.Session(
            aws_access_key_id=key, aws_secret_access_key=secret, region_name=self.region
        ).client("ec2", endpoint_url=self.endpoint_url)

    @property
    def ami(self) -> str:
        """An AMI moto knows in the region (one of moto's built-in images)."""
        ec2 = self.ec2()
        try:
            ec2.describe_images(ImageIds=[EXAMPLE_AMI])
            return EXAMPLE_AMI
        except ClientError:  # another moto: look for one (slower)
            images = ec2.describe_images(Owners=["amazon"])["Images"]
            return str(sorted(i["ImageId"] for i in images)[0])

    def settings(self, **more: Any) -> dict[str, Any]:
        """Provider settings of the `aws` provider for this server (plus `more`)."""
        return {
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            **more,
        }

    def log(self) -> str:
        """What the server printed (its request log)."""
        return self._log.read_text(errors="replace") if self._log is not None else ""

    # --- internals -----------------------------------------------------------------------

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                # A GET is refused (400) without touching any backend or the auth count.
                _OPENER.open(self.endpoint_url + "/moto-api/reset-auth", timeout=2)
            except urllib.error.HTTPError:
                return True
            except OSError:
                time.sleep(0.05)
                continue
            return True
        return False

    def _post(self, path: str, body: bytes) -> dict[str, Any]:
        url = self.endpoint_url + path  # http://127.0.0.1:<port>/...: built here
        # text/plain: moto reads the raw body (a form body would be parsed away).
        headers = {"Content-Type": "text/plain"}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        with _OPENER.open(request, timeout=10) as reply:
            data: dict[str, Any] = json.loads(reply.read() or b"{}")
            return data

    def _arm(self) -> None:
        """Let AUTH_REQUESTS requests in unsigned, and use them to make the test user."""
        self._post("/moto-api/reset-auth", str(AUTH_REQUESTS).encode())
        iam = boto3.session.Session(
            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap", region_name=REGION
        ).client("iam", endpoint_url=self.endpoint_url)
        iam.create_user(UserName=USER)
        iam.put_user_policy(
            UserName=USER, PolicyName="allow-all", PolicyDocument=json.dumps(_ALLOW_ALL)
        )
        key = iam.create_access_key(UserName=USER)["AccessKey"]
        self.access_key_id, self.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]
        # Authentication is on from here: the key works, another does not.
        self.ec2().describe_regions()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A moto_server for the session (one per module that imports this fixture)."""
    with MotoServer() as server:
        yield server

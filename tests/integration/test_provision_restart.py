"""A front-end stopped in the middle of a provision's step: the provision is ERROR (named,
with the step), not left looking busy; the next front-end's `retry` resumes it."""

from __future__ import annotations

from pathlib import Path

from edgecloud.provision import example
from tests.support.frontend import serve_frontend

FAKE = {"local": "fake"}


def test_a_provision_cut_short_by_a_stop_is_error_and_retry_resumes_it(
    tmp_path: Path, db_url: str
) -> None:
    slow = example("local-edge").replace(
        "provider: local", "provider: local\nprovider_settings: {sleep: 2}"
    )
    with (
        serve_frontend(tmp_path, db_url, provision_drivers=FAKE) as first,
        first.client() as admin,
    ):
        made = admin.provisions.create(template=slow, inputs={"hosts": "1"})
        admin.provisions.wait(made.id, ("DEPLOYING",), timeout=30)
    # The stop waited for the running step, then the operation ended there.
    with (
        serve_frontend(tmp_path, db_url, provision_drivers=FAKE) as second,
        second.client(first.admin_user, first.admin_password) as admin,
    ):
        stopped = admin.provisions.get(made.id)
        assert stopped.state_name == "ERROR", stopped
        assert "the front-end stopped before step configure" in stopped.last_error
        assert stopped.step == "configure"
        admin.provisions.retry(made.id)
        done = admin.provisions.wait(made.id, timeout=60)
        assert done.state_name == "RUNNING", done.last_error
        steps = [(s.name, s.state) for s in admin.provisions.log(made.id)]
        assert steps == [
            ("hosts", "done"),
            ("configure", "done"),
            ("register", "done"),
            ("monitor", "done"),
        ]
        admin.provisions.delete(made.id)
        assert admin.provisions.wait(made.id).state_name == "DONE"

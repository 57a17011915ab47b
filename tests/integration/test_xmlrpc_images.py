"""one.image.*, one.imagepool.info, one.template.*, one.templatepool.info through pyone and
raw calls (every document validated against OpenNebula's XSDs): images downloaded from a
URL or empty DATABLOCKs, their states and rights; templates from pyone dicts and
OpenNebula text, instantiated on a fake host; pool filters; OpenNebula's error codes."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyone
import pytest

from edgecloud.client import Client
from edgecloud.server.xmlrpc.core import ACTION, ALLOCATE, AUTHORIZATION, NO_EXISTS
from tests.support.frontend import RunningFrontEnd
from tests.support.one import Raw, pyone_client
from tests.support.waiting import wait_vms
from tests.support.web import serve_directory

READY, USED, DISABLED, LOCKED, ERROR = 1, 2, 3, 4, 5
DATABLOCK, OS, CDROM = 2, 0, 1


@pytest.fixture(scope="module")
def frontend_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return {
        "scheduler_interval": 0.1,
        "monitor_interval": 0.2,
        "fake_state_dir": str(tmp_path_factory.mktemp("fake-hosts")),
    }


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A throwaway HTTP server on loopback: (base URL, the directory it serves)."""
    root = tmp_path_factory.mktemp("web")
    with serve_directory(root) as url:
        yield url, root


@pytest.fixture(scope="module")
def fake_host(admin: Client) -> int:
    return admin.hosts.create(
        name=f"img-host-{uuid.uuid4().hex[:6]}",
        hypervisor="fake",
        total_cpu=8,
        total_memory_mb=8192,
    ).id


@pytest.fixture
def new_user(admin: Client) -> Callable[[], tuple[str, str]]:
    """Create a plain user; its (name, password)."""

    def make() -> tuple[str, str]:
        name, password = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        admin.users.create(name=name, password=password)
        return name, password

    return make


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def _perms(image: Any) -> str:
    p = image.PERMISSIONS
    bits = [p.OWNER_U, p.OWNER_M, p.OWNER_A, p.GROUP_U, p.GROUP_M, p.GROUP_A]
    bits += [p.OTHER_U, p.OTHER_M, p.OTHER_A]
    return "".join(str(b) for b in bits)


def _ready(one: Any, image_id: int) -> Any:
    return _until(f"image {image_id} READY", lambda: one.image.info(image_id).STATE == READY)


def test_an_image_from_a_url_becomes_ready_and_is_managed(
    frontend: RunningFrontEnd, admin: Client, web: tuple[str, Path]
) -> None:
    base, root = web
    data = os.urandom(3 * 2**20 + 7)
    (root / "disk.img").write_bytes(data)
    one, raw = pyone_client(frontend), Raw(frontend)
    name = _name("url")
    image_id = one.image.allocate(
        f'NAME = "{name}"\nTYPE = OS\nPATH = "{base}/disk.img"\nDEV_PREFIX = "vd"\n', 1
    )
    assert one.image.info(image_id).STATE in (LOCKED, READY)
    _ready(one, image_id)
    raw.ok("one.image.info", image_id)
    image = one.image.info(image_id)
    got = (image.NAME, image.TYPE, image.PERSISTENT, image.FORMAT, image.SIZE, image.PATH)
    assert got == (name, OS, 0, "raw", 4, f"{base}/disk.img")
    got = (image.DATASTORE_ID, image.DATASTORE, image.UNAME, image.RUNNING_VMS)
    assert got == (1, "default", frontend.admin_user, 0)
    assert image.SOURCE and image.TEMPLATE["DEV_PREFIX"] == "vd"

    assert one.image.persistent(image_id, True) == image_id
    assert one.image.info(image_id).PERSISTENT == 1
    one.image.persistent(image_id, False)
    one.image.enable(image_id, False)
    assert one.image.info(image_id).STATE == DISABLED
    with pytest.raises(pyone.OneException):  # a disabled image is not copied
        one.image.clone(image_id, _name("copy"), -1)
    one.image.enable(image_id, True)
    assert one.image.info(image_id).STATE == READY

    one.image.chmod(image_id, -1, -1, -1, 1, 0, -1, 1, -1, -1)
    assert _perms(one.image.info(image_id)) == "110100100"
    one.image.update(image_id, 'DESCRIPTION = "first"', 1)
    attrs = one.image.info(image_id).TEMPLATE
    assert (attrs["DESCRIPTION"], attrs["DEV_PREFIX"]) == ("first", "vd")
    one.image.update(image_id, {"TEMPLATE": {"DESCRIPTION": "only"}}, 0)
    assert "DEV_PREFIX" not in one.image.info(image_id).TEMPLATE
    one.image.rename(image_id, f"{name}-renamed")
    one.image.chtype(image_id, "DATABLOCK")
    changed = one.image.info(image_id)
    assert (DATABLOCK, f"{name}-renamed") == (changed.TYPE, changed.NAME)

    copy_id = one.image.clone(image_id, _name("copy"), -1)
    copied = raw.ok("one.image.info", copy_id)
    assert copied.startswith("<IMAGE>")
    _ready(one, copy_id)
    assert one.image.info(copy_id).SOURCE != one.image.info(image_id).SOURCE

    user, password = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    uid = admin.users.create(name=user, password=password).id
    one.image.chown(copy_id, uid, -1)
    given = one.image.info(copy_id)
    assert (uid, user) == (given.UID, given.UNAME)
    assert copy_id in [
        i.ID for i in pyone_client(frontend, user, password).imagepool.info(-3, -1, -1).IMAGE
    ]

    assert one.image.delete(copy_id) == copy_id
    with pytest.raises(pyone.OneNoExistsException):
        one.image.info(copy_id)
    one.image.delete(image_id)
    assert image_id not in [i.ID for i in one.imagepool.info(-2, -1, -1).IMAGE]


def test_empty_datablocks_bad_templates_and_unknown_images(
    frontend: RunningFrontEnd,
    new_user: Callable[[], tuple[str, str]],
    tmp_path: Path,
    web: tuple[str, Path],
) -> None:
    one, raw = pyone_client(frontend), Raw(frontend)
    block = one.image.allocate(
        {"IMAGE": {"NAME": _name("blk"), "TYPE": "DATABLOCK", "SIZE": "64", "PERSISTENT": "YES"}},
        1,
    )
    image = one.image.info(block)
    assert (image.STATE, image.TYPE, image.SIZE, image.PERSISTENT) == (READY, DATABLOCK, 64, 1)
    raw.ok("one.imagepool.info", -2, block, block)
    twin = one.image.info(one.image.clone(block, _name("twin")))  # empty: a new empty one
    assert (twin.STATE, twin.TYPE, twin.SIZE, twin.PERSISTENT) == (READY, DATABLOCK, 64, 0)

    for bad in (
        f'NAME = "{_name("x")}"\nTYPE = DATABLOCK\n',  # neither PATH nor SIZE
        f'NAME = "{_name("x")}"\nTYPE = FLOPPY\nSIZE = 1\n',
        f'NAME = "{_name("x")}"\nPATH = "ftp://example.com/x"\n',
        f'NAME = "{_name("x")}"\nTYPE = DATABLOCK\nSIZE = 1\nFORMAT = vmdk\n',
        'TYPE = DATABLOCK\nSIZE = 1\nNAME = "a\nb',  # not a template
        "TYPE = DATABLOCK\nSIZE = 1\n",  # no NAME
    ):
        assert raw.error("one.image.allocate", bad, 1)[1] == ALLOCATE, bad
    taken = one.image.info(block).NAME
    assert (
        raw.error("one.image.allocate", f'NAME="{taken}"\nTYPE=DATABLOCK\nSIZE=1', 1)[1] == ALLOCATE
    )
    assert (
        raw.error("one.image.allocate", f'NAME="{_name("x")}"\nTYPE=DATABLOCK\nSIZE=1', 0)[1]
        == ALLOCATE
    )
    assert raw.error("one.image.allocate", f'NAME="{_name("x")}"\nTYPE=DATABLOCK\nSIZE=1', 999)[
        1
    ] in (
        ALLOCATE,
        NO_EXISTS,
    )

    # A file of the front-end is for administrators (as with the REST API's import_path).
    seed = tmp_path / "seed.raw"
    seed.write_bytes(os.urandom(4096))
    user, password = new_user()
    as_user = Raw(frontend, user, password)
    assert as_user.error("one.image.allocate", f'NAME="x"\nPATH="{seed}"', 1)[1] == ALLOCATE
    imported = one.image.allocate(f'NAME="{_name("imp")}"\nPATH="{seed}"', 1)
    _ready(one, imported)
    missing = one.image.allocate(f'NAME="{_name("404")}"\nPATH="{web[0]}/nope.img"', 1)
    failed = _until("ERROR", lambda: (i := one.image.info(missing)).STATE == ERROR and i)
    assert "HTTP 404" in failed.TEMPLATE["ERROR"]
    assert raw.error("one.image.enable", missing, True)[1] == ACTION

    for call, args in (
        ("one.image.info", (987654,)),
        ("one.image.delete", (987654,)),
        ("one.image.persistent", (987654, True)),
        ("one.image.chmod", (987654, 1, 1, 0, 0, 0, 0, 0, 0, 0)),
        ("one.image.clone", (987654, "c", -1)),
    ):
        assert raw.error(call, *args)[1] == NO_EXISTS, call
    assert raw.error("one.image.snapshotdelete", block, 0)[1] == ACTION
    assert raw.error("one.image.snapshotrevert", block, 0)[1] == ACTION
    assert raw.error("one.image.snapshotflatten", block, 0)[1] == ACTION
    assert raw.ok("one.image.enable", imported, True) == imported  # READY already: no-op
    assert as_user.error("one.image.info", block)[1] == AUTHORIZATION
    assert as_user.error("one.image.delete", block)[1] == AUTHORIZATION
    one.image.chmod(block, -1, -1, -1, -1, -1, -1, 1, 0, 0)  # others may use it
    assert as_user.ok("one.image.info", block).startswith("<IMAGE>")
    assert as_user.error("one.image.delete", block)[1] == AUTHORIZATION


def test_templates_from_dicts_and_text_instantiated_on_a_fake_host(
    frontend: RunningFrontEnd, admin: Client, fake_host: int
) -> None:
    one, raw = pyone_client(frontend), Raw(frontend)
    image_id = one.image.allocate(
        {"IMAGE": {"NAME": _name("disk"), "TYPE": "DATABLOCK", "SIZE": "8"}}, 1
    )
    name = _name("tpl")
    from_dict = one.template.allocate(
        {
            "TEMPLATE": {
                "NAME": name,
                "CPU": "0.5",
                "MEMORY": "128",
                "DISK": {"IMAGE_ID": str(image_id)},
                "CONTEXT": {"HOSTNAME": "$NAME"},
            }
        }
    )
    doc = raw.ok("one.template.info", from_dict)
    assert doc.startswith("<VMTEMPLATE>")
    tpl = one.template.info(from_dict)
    assert (tpl.NAME, tpl.UNAME, tpl.TEMPLATE["MEMORY"]) == (name, frontend.admin_user, "128")
    assert tpl.TEMPLATE["DISK"]["IMAGE_ID"] == str(image_id)
    assert tpl.TEMPLATE["CONTEXT"]["HOSTNAME"] == "$NAME"

    text_name = _name("text")
    from_text = one.template.allocate(
        f'NAME = "{text_name}"\nCPU = 0.25\nMEMORY = 64\n'
        f'DISK = [ IMAGE_ID = "{image_id}" ]\nDISK = [ TYPE = fs, SIZE = 16 ]\n'
    )
    assert one.template.info(from_text).TEMPLATE["CPU"] == "0.25"
    one.template.update(from_text, 'DESCRIPTION = "added"', 1)
    assert one.template.info(from_text).TEMPLATE["MEMORY"] == "64"
    one.template.update(from_text, 'CPU = 0.5\nMEMORY = 96\nDESCRIPTION = "replaced"', 0)
    replaced = one.template.info(from_text).TEMPLATE
    assert (replaced["MEMORY"], replaced["NAME"], "DISK" in replaced) == ("96", text_name, False)
    one.template.rename(from_text, f"{text_name}-2")
    assert one.template.info(from_text).TEMPLATE["NAME"] == f"{text_name}-2"

    vm_id = one.template.instantiate(from_dict, "from-xmlrpc", False, 'MEMORY = "256"')
    held = one.template.instantiate(from_dict, "", True, "")
    states = wait_vms(admin, [vm_id], lambda s: s == "ACTIVE/RUNNING")
    assert states == {vm_id: "ACTIVE/RUNNING"}
    vm = admin.vms.get(vm_id)
    assert (vm.name, vm.memory_mb, vm.template_id, vm.host_id) == (
        "from-xmlrpc",
        256,
        from_dict,
        fake_host,
    )
    assert admin.vms.get(held).state_name == "HOLD"
    image = one.image.info(image_id)
    assert (image.RUNNING_VMS, image.STATE) == (2, USED)
    assert sorted(image.VMS.ID) == sorted([vm_id, held])
    raw.ok("one.imagepool.info", -2, image_id, image_id)
    assert raw.error("one.image.persistent", image_id, True)[1] == ACTION  # in use
    assert raw.error("one.image.delete", image_id)[1] == ACTION
    assert raw.error("one.template.instantiate", from_dict, "p", False, "", True)[1] == ACTION
    assert raw.error("one.template.instantiate", from_dict, "bad", False, "CPU = lots")[1] == (
        ALLOCATE
    )

    clone = one.template.clone(from_dict, _name("plain"), False)
    assert one.template.info(clone).TEMPLATE["DISK"]["IMAGE_ID"] == str(image_id)
    for vm in (vm_id, held):
        admin.vms.action(vm, "terminate", hard=True)
    wait_vms(admin, [vm_id, held], lambda s: s == "DONE")
    _until("image back", lambda: one.image.info(image_id).RUNNING_VMS == 0)
    one.template.delete(from_text)
    with pytest.raises(pyone.OneNoExistsException):
        one.template.info(from_text)


def test_recursive_clone_and_delete_with_images(
    frontend: RunningFrontEnd, web: tuple[str, Path]
) -> None:
    base, root = web
    (root / "os.img").write_bytes(os.urandom(2**20))
    one, raw = pyone_client(frontend), Raw(frontend)
    image_id = one.image.allocate(f'NAME="{_name("os")}"\nPATH="{base}/os.img"', 1)
    _ready(one, image_id)
    source = one.template.allocate(
        f'NAME="{_name("src")}"\nMEMORY=64\nDISK=[IMAGE_ID={image_id}]\nDISK=[TYPE=swap,SIZE=8]'
    )
    copy_name = _name("deep")
    copy = one.template.clone(source, copy_name, True)
    disks = one.template.info(copy).TEMPLATE["DISK"]
    new_image = int(disks[0]["IMAGE_ID"])
    assert new_image != image_id and disks[1]["TYPE"] == "swap"
    copied = one.image.info(new_image)
    assert f"{copy_name}-disk-0" == copied.NAME
    _ready(one, new_image)

    one.template.chmod(copy, -1, -1, -1, 1, -1, -1, -1, -1, -1, True)
    assert _perms(one.template.info(copy))[3] == "1"
    assert _perms(one.image.info(new_image))[3] == "1"
    assert raw.ok("one.templatepool.info", -2, copy, copy).count("<VMTEMPLATE>") == 1

    one.template.delete(copy, True)
    for call, obj in (("one.template.info", copy), ("one.image.info", new_image)):
        assert raw.error(call, obj)[1] == NO_EXISTS
    one.template.delete(source, False)
    assert one.image.info(image_id).STATE == READY  # kept


def test_pool_filters_and_other_users_objects(
    frontend: RunningFrontEnd, new_user: Callable[[], tuple[str, str]]
) -> None:
    admin_one = pyone_client(frontend)
    admin_tpl = admin_one.template.allocate(f'NAME="{_name("adm")}"\nMEMORY=32')
    owner, owner_pw = new_user()
    other, other_pw = new_user()
    mine = pyone_client(frontend, owner, owner_pw)
    theirs = Raw(frontend, other, other_pw)
    tpl = mine.template.allocate(f'NAME="{_name("own")}"\nCPU=0.1\nMEMORY=32')
    image = mine.image.allocate(f'NAME="{_name("own")}"\nTYPE=DATABLOCK\nSIZE=4', 1)

    assert [t.ID for t in mine.templatepool.info(-3, -1, -1).VMTEMPLATE] == [tpl]
    seen = [t.ID for t in mine.templatepool.info(-2, -1, -1).VMTEMPLATE]
    assert tpl in seen and admin_tpl not in seen  # the admin's is private
    all_ids = [t.ID for t in admin_one.templatepool.info(-2, -1, -1).VMTEMPLATE]
    assert {tpl, admin_tpl} <= set(all_ids)
    assert [i.ID for i in mine.imagepool.info(-3, -1, -1).IMAGE] == [image]
    assert theirs.ok("one.templatepool.info", -2, -1, -1).count("<VMTEMPLATE>") == 0
    assert Raw(frontend).ok("one.templatepool.info", -2, tpl, tpl).count("<VMTEMPLATE>") == 1
    page = Raw(frontend).ok("one.templatepool.info", -2, -1, -2)  # the first page of 2
    assert page.count("<VMTEMPLATE>") == 2

    for call, args in (
        ("one.template.info", (tpl,)),
        ("one.template.instantiate", (tpl, "x", False, "")),
        ("one.template.delete", (tpl,)),
        ("one.template.clone", (tpl, "x")),
        ("one.image.info", (image,)),
    ):
        assert theirs.error(call, *args)[1] == AUTHORIZATION, call
    with pytest.raises(pyone.OneAuthorizationException):
        pyone_client(frontend, other, other_pw).template.info(tpl)
    with pytest.raises(pyone.OneNoExistsException):
        mine.template.info(987654)
    assert theirs.error("one.template.update", 987654, "A=1", 0)[1] == NO_EXISTS
    assert theirs.error("one.template.allocate", 'NAME="bad"\nMEMORY=lots')[1] == ALLOCATE
    assert theirs.error("one.template.allocate", "MEMORY=32")[1] == ALLOCATE  # no NAME
    assert theirs.error("one.template.allocate", "NAME = [ broken")[1] == ALLOCATE
    with pytest.raises(pyone.OneAuthorizationException):  # giving to another user
        mine.template.chown(tpl, 0, -1)

    mine.template.chmod(tpl, -1, -1, -1, -1, -1, -1, 1, -1, -1)  # others may use it
    assert theirs.ok("one.template.info", tpl).startswith("<VMTEMPLATE>")
    assert theirs.error("one.template.delete", tpl)[1] == AUTHORIZATION  # USE, not MANAGE
    assert tpl in [
        t.ID
        for t in pyone_client(frontend, other, other_pw).templatepool.info(-2, -1, -1).VMTEMPLATE
    ]
    assert tpl not in [
        t.ID
        for t in pyone_client(frontend, other, other_pw).templatepool.info(-3, -1, -1).VMTEMPLATE
    ]

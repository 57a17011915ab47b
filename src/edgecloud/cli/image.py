"""`edgecloud image`: disk images in image datastores."""

import json
import os
import shutil
import sys
import tarfile
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal

import typer

from edgecloud.api.workload import Image, ImageKind
from edgecloud.cli.context import CliState, cli_state
from edgecloud.cli.nouns import (
    NameFilter,
    Noun,
    ObjId,
    TemplateFile,
    add_common,
    changes,
    created,
    list_objects,
    noun_app,
    read_template,
    updated,
)
from edgecloud.cli.output import Format, fail, mib, print_data
from edgecloud.client.images import Images
from edgecloud.images import ImageBuildError, ensure_tiny
from edgecloud.images.oci import OciError, OciImage, import_oci

IMAGE = Noun(
    "image",
    lambda client: client.images,
    [
        ("ID", lambda i: i.id),
        ("NAME", lambda i: i.name),
        ("OWNER", lambda i: i.owner_id),
        ("DATASTORE", lambda i: i.datastore_id),
        ("TYPE", lambda i: i.kind),
        ("STATE", lambda i: i.state_name),
        ("SIZE", lambda i: mib(i.size_mb)),
        ("PERSISTENT", lambda i: i.persistent),
        ("VMS", lambda i: i.running_vms),
    ],
)
app = noun_app("Images: OS disks, CD-ROMs and data blocks.")
add_common(app, IMAGE, ("show", "delete", "chmod", "chown"))

build_app = typer.Typer(help="Build the images edgecloud makes itself.", no_args_is_help=True)
app.add_typer(build_app, name="build")

Kind = Annotated[ImageKind | None, typer.Option("--type", help="Image type.")]
IMAGES_DIR = Path("/var/lib/edgecloud/images")


@app.command("list")
def list_images(
    ctx: typer.Context,
    name: NameFilter = None,
    datastore: Annotated[int | None, typer.Option(min=0, help="Only this datastore.")] = None,
) -> None:
    """List images."""
    list_objects(ctx, IMAGE, name=name, datastore_id=datastore)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Image name.")],
    datastore: Annotated[int, typer.Option(min=0, help="Image datastore id.")] = 1,
    size: Annotated[int, typer.Option(min=0, help="Size in MiB.")] = 0,
    kind: Annotated[ImageKind, typer.Option("--type", help="Image type.")] = "OS",
    persistent: Annotated[bool, typer.Option(help="Keep changes (one VM at a time).")] = False,
    disk_format: Annotated[
        Literal["auto", "raw", "qcow2", "dir"] | None,
        typer.Option("--format", help="Disk format (auto: what the bytes are)."),
    ] = None,
    upload: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Send this file (shows progress)."),
    ] = None,
    url: Annotated[str, typer.Option(help="Download the image from this http(s) URL.")] = "",
    import_path: Annotated[
        str, typer.Option(help="Copy this file of the front-end's machine (administrators).")
    ] = "",
    path: Annotated[
        str, typer.Option(help="Use this path on the hosts in place (administrators).")
    ] = "",
    checksum: Annotated[str, typer.Option(help="sha256:<hex> the bytes must have.")] = "",
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is READY.")] = False,
    file: TemplateFile = None,
) -> None:
    """Register an image: upload a file, download a URL, or point at a path."""
    state, images = IMAGE.of(ctx)
    sources: dict[str, object] = {"format": disk_format, "import_path": import_path, "url": url}
    sources |= {"upload": upload is not None, "checksum": checksum}
    image = images.create(
        name=name,
        datastore_id=datastore,
        kind=kind,
        persistent=persistent,
        size_mb=size,
        path=path,
        template=read_template(file),
        **{key: value for key, value in sources.items() if value},
    )
    if upload is not None:
        image = _upload(images, image.id, upload, quiet=state.output is not Format.TABLE)
    elif wait and image.state_name == "LOCKED":
        image = images.wait_ready(image.id)
    created(state, "image", image)


def _upload(images: Images, image_id: int, file: Path, *, quiet: bool) -> Image:
    """Send the file with a progress bar (on stderr); fail with the server's reason."""
    total = file.stat().st_size
    if quiet:
        return images.upload(image_id, file)
    with typer.progressbar(length=total, label=f"uploading {file.name}", file=sys.stderr) as bar:
        done = 0

        def advance(sent: int, _total: int) -> None:
            nonlocal done
            bar.update(sent - done)
            done = sent

        return images.upload(image_id, file, progress=advance)


@app.command("clone")
def clone(
    ctx: typer.Context,
    obj_id: ObjId,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name of the copy.")],
    datastore: Annotated[int | None, typer.Option(min=0, help="Another image datastore.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the copy is READY.")] = False,
) -> None:
    """Copy an image into a new one."""
    state, images = IMAGE.of(ctx)
    image = images.clone(obj_id, name, datastore_id=datastore)
    if wait:
        image = images.wait_ready(image.id)
    created(state, "image", image)


@app.command("update")
def update(
    ctx: typer.Context,
    obj_id: ObjId,
    persistent: Annotated[
        bool | None, typer.Option("--persistent/--non-persistent", help="Keep changes or not.")
    ] = None,
    kind: Kind = None,
    file: TemplateFile = None,
) -> None:
    """Change an image's type, persistence or attributes."""
    body = changes(persistent=persistent, kind=kind, template=read_template(file))
    state, images = IMAGE.of(ctx)
    updated(state, "image", obj_id, images.update(obj_id, **body))


@build_app.command("tiny")
def build_tiny(
    ctx: typer.Context,
    cache: Annotated[
        Path | None,
        typer.Option(help="Cache directory (default: $EDGECLOUD_IMAGE_CACHE or /var/cache/...)."),
    ] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build again even if cached.")] = False,
) -> None:
    """Build the tiny kernel, initramfs and container rootfs from Debian packages (cached)."""
    state = cli_state(ctx)
    try:
        tiny = ensure_tiny(cache, rebuild=rebuild)
    except (ImageBuildError, OSError) as exc:
        fail(f"cannot build the tiny images: {exc}")
    data = {key: str(value) for key, value in asdict(tiny).items()}
    if state.output is not Format.TABLE:
        print_data(state.output, data)
        return
    for key, value in data.items():
        typer.echo(f"{key + ':':<17}{value}")


def oci_attributes(image: OciImage) -> dict[str, str]:
    """Return the image template attributes an application image carries (lists as JSON)."""
    return {
        "OCI_DIGEST": image.digest,
        "OCI_ENTRYPOINT": json.dumps(image.entrypoint),
        "OCI_CMD": json.dumps(image.cmd),
        "OCI_ENV": json.dumps(image.env),
        "OCI_WORKDIR": image.workdir,
    }


def _searchable(directory: Path) -> Path | None:
    """Return the first directory from / down to `directory` others cannot search, if any."""
    for path in [*reversed(directory.parents), directory]:
        if not os.stat(path).st_mode & 0o001:
            return path
    return None


@app.command("import-oci")
def import_oci_image(
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Argument(
            metavar="SOURCE", help="An OCI layout directory, an oci-archive or docker save tar."
        ),
    ],
    name: Annotated[str, typer.Option(help="Name of the new image.")],
    ref: Annotated[
        str | None, typer.Option(help="Which image of the source (its ref name or tag).")
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where it goes (default /var/lib/edgecloud/images/NAME)."),
    ] = None,
    upload: Annotated[
        bool,
        typer.Option(
            "--upload", help="Send the rootfs (as a tar) into an image datastore instead."
        ),
    ] = False,
    datastore: Annotated[int, typer.Option(min=0, help="Image datastore (--upload).")] = 1,
) -> None:
    """Import an application image as a rootfs and register it.

    By default (administrators) the rootfs lands in DIR/rootfs, the image's settings in
    DIR/oci.json, and hosts read the rootfs at that path, so DIR must be on them too (this
    machine, or shared storage). With --upload (anyone) it goes into an image datastore,
    and hosts get it through their image cache like any other image.
    """
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise typer.BadParameter("a name usable as a directory name", param_hint="--name")
    state, images = IMAGE.of(ctx)
    if upload:
        created(state, "image", _upload_oci(images, source, name, ref, datastore, state))
        return
    target = (directory or IMAGES_DIR / name).absolute()
    made = not target.exists()
    image: OciImage | None = None
    try:
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
        blocked = _searchable(target)
        if blocked is not None:  # the node copies it as root; a guest reading it in place cannot
            message = f"{blocked} is not searchable by others (o+x): only root reaches the rootfs"
            typer.echo(f"warning: {message}", err=True)
        image = import_oci(source, target / "rootfs", ref=ref)
        (target / "oci.json").write_text(json.dumps(image.summary(), indent=2) + "\n")
        registered = images.create(
            name=name,
            datastore_id=1,
            kind="OS",
            format="dir",
            path=str(image.rootfs),
            size_mb=image.size_mb,
            template=oci_attributes(image),
        )
    except BaseException as exc:
        if made:  # undo what this command made, and only that
            shutil.rmtree(target, ignore_errors=True)
        elif image is not None:
            shutil.rmtree(image.rootfs, ignore_errors=True)
            (target / "oci.json").unlink(missing_ok=True)
        if isinstance(exc, OciError | OSError):
            fail(f"cannot import {source}: {exc}")
        raise
    created(state, "image", registered)


def _upload_oci(
    images: Images, source: Path, name: str, ref: str | None, datastore: int, state: CliState
) -> Image:
    """Unpack the OCI image here, tar its rootfs and upload it as a `dir` image."""
    with tempfile.TemporaryDirectory(prefix="ec-oci-") as tmp:
        try:
            image = import_oci(source, Path(tmp) / "rootfs", ref=ref)
            bundle = Path(tmp) / "rootfs.tar"
            with tarfile.open(bundle, "w", format=tarfile.PAX_FORMAT) as tar:
                tar.add(image.rootfs, arcname=".")
        except (OciError, OSError, tarfile.TarError) as exc:
            fail(f"cannot import {source}: {exc}")
        registered = images.create(
            name=name,
            datastore_id=datastore,
            kind="OS",
            format="dir",
            upload=True,
            template=oci_attributes(image),
        )
        return _upload(images, registered.id, bundle, quiet=state.output is not Format.TABLE)

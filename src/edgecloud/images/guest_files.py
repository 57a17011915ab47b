"""The files the tiny images carry besides busybox and kernel modules: init scripts and /etc."""

from __future__ import annotations

MARKER = "EDGECLOUD-READY"
MODULE_LIST = "etc/tiny/modules"  # the initramfs's insmod list, one path a line, in load order

# /init of the VM initramfs. The kernel runs it as PID 1: it must never exit, so it ends
# by exec'ing busybox init, and anything that may fail (context.sh) runs in a subshell.
VM_INIT = f"""#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
exec 0</dev/console 1>/dev/console 2>&1

while read -r module; do
    insmod "$module" || echo "tiny-init: insmod $module failed"
done < /{MODULE_LIST}

name=tiny
app=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        hostname=?*) name="${{arg#hostname=}}" ;;
        ec.app=/?*) app="${{arg#ec.app=}}" ;;
    esac
done
hostname "$name"
echo "$name" > /etc/hostname
ip link set lo up

# The power button (ACPI "button" module) shows up as an input device: acpid turns a
# press (QMP system_powerdown) into /etc/acpi/PWRF/00000080, which powers off.
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -e /dev/input/event0 ] && break
    sleep 0.1
done
acpid

/etc/tiny/context

[ -n "$app" ] && [ -d "$app" ] && exec /etc/tiny/app "$app"
echo "{MARKER}"
exec /sbin/init
"""

# PID 1 of an application guest (kernel command line `ec.app=DIR`): DIR is the
# application's root, unpacked from the archive the node appended to the initramfs, and
# DIR/.edgecloud/ holds its command (argv, env, workdir: one item a line). It runs chrooted
# there with busybox copied in, so the image needs no shell. The power button (acpid ->
# busybox poweroff -> SIGUSR2 to PID 1) asks it to stop with SIGTERM; once it has exited,
# the guest powers off.
APP_INIT = f"""#!/bin/sh
root=$1
for dir in proc sys dev tmp run .edgecloud; do mkdir -p "$root/$dir"; done
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o nosuid,nodev,noexec sysfs "$root/sys"
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs "$root/dev"
mkdir -p "$root/dev/pts"
mount -t devpts -o gid=5,mode=620 devpts "$root/dev/pts"
cp /bin/busybox "$root/.edgecloud/busybox"
cp /etc/tiny/app-run "$root/.edgecloud/run"
echo "{MARKER}"
chroot "$root" /.edgecloud/busybox sh /.edgecloud/run &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' TERM USR1 USR2
status=0
while kill -0 $pid 2>/dev/null; do
    wait $pid
    status=$?
done
echo "tiny-init: the application exited with status $status; powering off"
sync
poweroff -f
"""

# Runs chrooted in the application's root (as `/.edgecloud/busybox sh /.edgecloud/run`):
# shell builtins only. The command gets exactly the image's environment (env -i).
APP_RUN = """#!/bin/sh
app=/.edgecloud
workdir=/
[ -s $app/workdir ] && IFS= read -r workdir < $app/workdir
cd "$workdir" || exit 126
set --
while IFS= read -r item; do set -- "$@" "$item"; done < $app/env
count=$#
while IFS= read -r item; do set -- "$@" "$item"; done < $app/argv
if [ $# -le $count ]; then
    echo "tiny-init: no command to run"
    exit 127
fi
exec $app/busybox env -i -- "$@"
"""

# Contextualization hook: a CD-ROM labelled CONTEXT or cidata is mounted at /mnt/context;
# its context.sh is sourced in a subshell, and START_SCRIPT (if set) is run. Busybox's
# findfs cannot read ISO 9660 labels, so read the volume descriptor (sector 16) directly.
CONTEXT = """#!/bin/sh
iso_label() {
    [ "$(dd if="$1" bs=1 skip=32769 count=5 2>/dev/null)" = CD001 ] || return 1
    dd if="$1" bs=1 skip=32808 count=32 2>/dev/null | tr -d ' ' | tr a-z A-Z
}
for dev in /dev/sr* /dev/vd* /dev/sd*; do
    [ -b "$dev" ] || continue
    case "$(iso_label "$dev")" in CONTEXT|CIDATA) found=$dev; break ;; esac
done
[ -n "$found" ] || exit 0
mkdir -p /mnt/context
mount -t iso9660 -o ro "$found" /mnt/context || exit 0
exec /etc/tiny/apply-context /mnt/context
"""

# Applies OpenNebula's context.sh from a directory (the CD-ROM, or /.edgecloud/context in
# a container): each ETHx_* to the interface with ETHx_MAC, default route, DNS, hostname,
# then START_SCRIPT (or START_SCRIPT_BASE64), its output on the console and in
# /run/start_script.log. Values are only ever assigned, never evaluated.
APPLY_CONTEXT = """#!/bin/sh
dir=$1
[ -f "$dir/context.sh" ] || exit 0
. "$dir/context.sh"
mask2prefix() {
    n=0
    for octet in $(echo "$1" | tr . ' '); do
        case $octet in
            255) n=$((n + 8)) ;; 254) n=$((n + 7)) ;; 252) n=$((n + 6)) ;;
            248) n=$((n + 5)) ;; 240) n=$((n + 4)) ;; 224) n=$((n + 3)) ;;
            192) n=$((n + 2)) ;; 128) n=$((n + 1)) ;;
        esac
    done
    echo $n
}
for path in /sys/class/net/*; do
    dev=${path##*/}
    [ "$dev" = lo ] && continue
    mac=$(cat "$path/address")
    i=0
    while [ $i -lt 16 ]; do
        eval "want=\\$ETH${i}_MAC"
        if [ -n "$want" ] && [ "$want" = "$mac" ]; then
            eval "addr=\\$ETH${i}_IP; mask=\\$ETH${i}_MASK"
            eval "gw=\\$ETH${i}_GATEWAY; dns=\\$ETH${i}_DNS"
            ip link set "$dev" up
            if [ -n "$addr" ]; then
                ip addr add "$addr/$(mask2prefix "${mask:-255.255.255.0}")" dev "$dev" 2>/dev/null
            fi
            [ -n "$gw" ] && ip route add default via "$gw" dev "$dev" 2>/dev/null
            if [ -n "$dns" ]; then
                for server in $dns; do echo "nameserver $server"; done > /etc/resolv.conf
            fi
        fi
        i=$((i + 1))
    done
done
if [ -n "$SET_HOSTNAME" ]; then
    hostname "$SET_HOSTNAME"
    echo "$SET_HOSTNAME" > /etc/hostname
fi
if [ -n "$START_SCRIPT_BASE64" ]; then
    START_SCRIPT=$(echo "$START_SCRIPT_BASE64" | base64 -d)
fi
if [ -n "$START_SCRIPT" ]; then
    mkdir -p /run
    printf '%s\\n' "$START_SCRIPT" > /run/start_script
    chmod 0755 /run/start_script
    /run/start_script > /run/start_script.log 2>&1
    cat /run/start_script.log
fi
exit 0
"""

VM_INITTAB = """::respawn:/bin/cttyhack /bin/sh -l
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r 2>/dev/null
"""

POWER_BUTTON = """#!/bin/sh
exec /sbin/poweroff
"""

# LXC system container: busybox init runs rcS, then keeps a shell on the console.
# LXC stops it with lxc.signal.halt = SIGUSR2 (busybox init: USR1 halt, USR2 poweroff,
# TERM reboot).
CT_INITTAB = """::sysinit:/etc/init.d/rcS
::respawn:-/bin/sh
::shutdown:/bin/sync
"""

CT_RCS = f"""#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
[ -e /proc/self ] || mount -t proc proc /proc
mkdir -p /run /tmp
ip link set lo up 2>/dev/null
/etc/tiny/apply-context /.edgecloud/context > /dev/console 2>&1
echo "{MARKER}" > /dev/console
"""

PROFILE = 'export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nPS1="$(hostname):\\w# "\n'

# Path -> (content, permissions), shared by the initramfs and the container rootfs.
COMMON_ETC: dict[str, tuple[str, int]] = {
    "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\n", 0o644),
    "etc/group": ("root:x:0:\ntty:x:5:\n", 0o644),
    "etc/profile": (PROFILE, 0o644),
    "etc/hostname": ("tiny\n", 0o644),
    "etc/tiny/apply-context": (APPLY_CONTEXT, 0o755),
}
VM_FILES: dict[str, tuple[str, int]] = {
    **COMMON_ETC,
    "init": (VM_INIT, 0o755),
    "etc/inittab": (VM_INITTAB, 0o644),
    "etc/tiny/context": (CONTEXT, 0o755),
    "etc/acpi/PWRF/00000080": (POWER_BUTTON, 0o755),
    "etc/tiny/app": (APP_INIT, 0o755),
    "etc/tiny/app-run": (APP_RUN, 0o755),
}
CT_FILES: dict[str, tuple[str, int]] = {
    **COMMON_ETC,
    "etc/inittab": (CT_INITTAB, 0o644),
    "etc/init.d/rcS": (CT_RCS, 0o755),
}
# Directories both trees have (the VM's get its mounts over them).
DIRS = (
    "bin",
    "sbin",
    "usr",
    "usr/bin",
    "usr/sbin",
    "dev",
    "proc",
    "sys",
    "tmp",
    "run",
    "root",
    "etc",
    "var",
    "var/log",
    "mnt",
)

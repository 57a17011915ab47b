"""Code that runs ON a host: the node actions the front-end calls over its transport.

It ships as one zipapp (`edgecloud.node.build`), standard library only plus the pure-Python
`qemu.qmp` package bundled inside, and is copied to ``<ROOT>/node.pyz`` on each host.
Nothing in here imports the rest of edgecloud.

Protocol
--------
The front-end runs ``python3 <ROOT>/node.pyz <action>`` with one JSON object on stdin and
reads one JSON object from stdout:

    {"ok": true, "result": {...}}
    {"ok": false, "error": "what went wrong, for a person", "kind": "failed|missing|bad_request"}

The exit status is 0 when ok, 1 otherwise. Every request carries ``"root"``: the host's
directory tree (``/var/lib/edgecloud`` on a real host, a temp dir on a namespace test host).

Layout under ROOT::

    node.pyz                     this code
    guests/<deploy_id>/          one directory per guest (deploy_id is "one-<vm id>")
        spec.json                the spec it was deployed with, plus "kind", "accel" (and
                                 for lxc "uid_shift"); restore and reboot reuse it
        console.log              serial console (kvm, microvm) or console log (lxc)
        initrd.img               a kvm/microvm guest with a rootfs: its initrd with the
                                 rootfs appended (see appfs.py)
        qmp.sock / qemu.pid      QEMU's QMP socket and pid (kvm, microvm)
        memory.state             saved memory (kvm, microvm, after save)
        hypervisor.log           stderr of the last QEMU start / lxc-start's error log
    lxc/<deploy_id>/             the LXC container (config, rootfs); `lxc-* -P ROOT/lxc`
    net/                         the host networks' registry and lock (edgecloud.node.net)
    frr/<frr_name>/              FRR's configs, pid files, logs while an evpn vnet is used
    cache/                       the KVM probe's verdict (kvm-probe.json) and firmware;
        locks/<deploy_id>.lock   held by actions that change a guest: one at a time

Actions and their request fields (besides root). ``kind`` is needed by deploy only: the
others take it from the guest's spec.json, else from the request, else "lxc" when
ROOT/lxc/<id> exists and "kvm" otherwise.

- ``version`` -> {"version"} (reads no request: ``python3 node.pyz version`` just runs)
- ``probe`` -> {"hostname", "cpu" (cores), "memory_mb", "used_cpu", "used_memory_mb",
  "total_disk_mb", "free_disk_mb", "hypervisors" (["kvm", "lxc", "microvm"] that are
  installed), "kvm" (bool: a guest really booted with KVM; decided by a short boot probe,
  cached under ROOT/cache), "unprivileged_lxc" (bool), "qemu_version", "lxc_version",
  "version"}
- ``deploy`` {kind, spec} -> {"deploy_id", "state": "running", "accel": "kvm|tcg|none",
  "privileged": bool, "pid"}; spec is::

      {"deploy_id", "vm_id", "name", "vcpu", "memory_mb",
       "kernel", "initrd", "cmdline",            # direct kernel boot (kvm, microvm)
       "disks": [{"path", "format": "qcow2|raw", "readonly": bool}],   # kvm disk boot
       "rootfs",                                 # lxc: a directory with the container's files;
                                                 # kvm, microvm: one appended to the initrd
       "init": [argv], "env": ["NAME=value"],    # an application to run (an OCI image's
       "workdir",                                # entrypoint + cmd, env, working dir)
       "privileged": bool,                       # lxc only; default unprivileged
       "ready_marker",                           # wait for this text on the console
       "boot_timeout",                           # seconds (default 60)
       "vnc": bool}

  Deploy returns only once the guest has really started: the ready marker seen on the
  console when the spec gives one, else QMP status "running" / an exec in the container.
  Idempotent: a guest already running is reported, not started twice. A guest with
  saved memory is refused (restore or clean it up). lxc guests are unprivileged unless
  the spec asks otherwise *or the host has no id range for root* (then privileged: the
  answer says which). For microvm under TCG the node appends ``earlyprintk=ttyS0`` and
  ``tsc_early_khz=<host TSC kHz>`` to the cmdline when missing (see qemu_argv.py).
  Application guests: an lxc container with "init" runs it as PID 1 (lxc.init.cmd, cwd,
  environment; halted with SIGTERM); it has started when RUNNING (+ ready marker). A
  kvm/microvm guest with "rootfs" boots its initrd with the rootfs and command appended
  and ``ec.app=/ec-root`` on the cmdline: the tiny /init runs "init" (default
  /sbin/init) chrooted there and powers off when it exits.
- ``shutdown`` {kind, deploy_id, hard, timeout} -> {}; ACPI (or the container's halt
  signal, SIGUSR2 for busybox init) first, hard stop after timeout (default 20 s); a
  missing guest is already stopped.
- ``reboot`` {kind, deploy_id, hard} -> {} (QEMU: a reset either way; lxc: the reboot
  signal, or kill and start again when hard)
- ``save`` {kind, deploy_id} -> {} memory to guests/<id>/memory.state, guest stopped
- ``restore`` {kind, deploy_id} -> {"state": "running"} from memory.state and spec.json
- ``cleanup`` {kind, deploy_id} -> {} kill what is left, remove guests/<id> and lxc/<id>
- ``poll`` {kind, deploy_id} -> guest status
- ``poll_all`` {} -> {"guests": [guest status, ...]} every guest under ROOT
- ``console_log`` {deploy_id, tail_bytes (default 65536)} -> {"text"}
- ``net_update_sg`` {deploy_id, nics} -> {} the guest's security group chains rewritten from
  the NICs' new "rules" (see edgecloud.node.net); "missing" when the guest has no networks
  on this host
- ``nic_attach`` {deploy_id, nic, network} -> {"nic_id", "device"}: one NIC (the shape of
  a spec's "nics" item) plugged into the running guest, ``network`` the host's underlay;
  kvm: tap + QMP netdev_add/device_add; lxc: a veth moved into the container as eth<i>;
  microvm: refused ("failed"). spec.json (and the LXC config) then list it. Idempotent.
- ``nic_detach`` {deploy_id, nic_id} -> {"nic_id", "device"}: the NIC unplugged (kvm:
  device_del, waiting until the guest released it), its tap/veth, filters and unused
  devices removed; a NIC the guest does not have is a no-op (see hotplug.py)

A guest status is {"deploy_id", "vm_id", "kind", "state": "running|paused|saved|stopped|
missing", "privileged", "figures": {"cpu_seconds", "memory_mb"}} (plus "accel" for kvm and
microvm guests). save and restore of lxc guests fail (no CRIU).
"""

PROTOCOL_VERSION = 1

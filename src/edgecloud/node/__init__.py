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
        spec.json                the spec it was deployed with (restore and reboot reuse it)
        console.log              serial console (kvm, microvm) or console log (lxc)
        qmp.sock / qemu.pid      QEMU's QMP socket and pid (kvm, microvm)
        memory.state             saved memory (kvm, microvm, after save)
    lxc/<deploy_id>/             the LXC container (config, rootfs); `lxc-* -P ROOT/lxc`
    cache/                       probe results and prepared rootfs copies

Actions and their request fields (besides root):

- ``version`` -> {"version"}
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
       "rootfs",                                 # lxc: a directory with the container's files
       "privileged": bool,                       # lxc only; default unprivileged
       "ready_marker",                           # wait for this text on the console
       "boot_timeout",                           # seconds (default 60)
       "vnc": bool}

  Deploy returns only once the guest has really started: the ready marker seen on the
  console when the spec gives one, else QMP status "running" / an exec in the container.
  Idempotent: a guest already running is reported, not started twice.
- ``shutdown`` {kind, deploy_id, hard, timeout} -> {}; ACPI (or SIGPWR/halt signal) first,
  hard stop after timeout; a missing guest is already stopped.
- ``reboot`` {kind, deploy_id, hard} -> {} (hard = reset)
- ``save`` {kind, deploy_id} -> {} memory to guests/<id>/memory.state, guest stopped
- ``restore`` {kind, deploy_id} -> {"state": "running"} from memory.state and spec.json
- ``cleanup`` {kind, deploy_id} -> {} kill what is left, remove guests/<id> and lxc/<id>
- ``poll`` {kind, deploy_id} -> guest status
- ``poll_all`` {} -> {"guests": [guest status, ...]} every guest under ROOT
- ``console_log`` {deploy_id, tail_bytes} -> {"text"}

A guest status is {"deploy_id", "vm_id", "kind", "state": "running|paused|saved|stopped|
missing", "privileged", "figures": {"cpu_seconds", "memory_mb"}}.
"""

PROTOCOL_VERSION = 1

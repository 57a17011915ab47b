"""Virtual networks on a host: bridges, 802.1Q, VXLAN, EVPN (FRR), nftables security groups.

Runs on the host, inside the node code (standard library only). The front-end resolves a
VM's NICs into the plain data below and sends it with the guest's spec; the node sets the
host up before the guest starts (pre), filters its NICs once they exist (post), and tears
down what no guest under ROOT uses any more (clean). Every step is idempotent and a
failed pre is undone.

Data (all fields plain JSON)
----------------------------
A deploy spec carries ``"nics": [nic, ...]`` and ``"network": host_net``::

    nic = {
      "nic_id": 0,                       # index in the VM's template
      "mac": "02:00:c6:12:00:0a",
      "ip": "198.18.10.10" | null, "prefix": 24, "gateway": "198.18.10.1" | null,
      "dns": "198.18.10.1" | null, "ip6": ... | null, "prefix6": 64 | null,
      "model": "virtio",                 # kvm NIC model
      "vnet": {
        "id": 3, "name": "private",
        "driver": "bridge" | "vlan" | "vxlan" | "evpn",
        "bridge": "ecbr3",               # the bridge the guest plugs into (<= 15 chars)
        "phydev": "eth0" | "",          # uplink: enslaved (bridge), parent (vlan, vxlan)
        "vlan_id": 100 | null,           # 802.1Q id (vlan) or VNI (vxlan, evpn)
        "mtu": 1450 | null,
        "vxlan_mode": "multicast" | "flood",   # vxlan only
        "group": "239.0.0.3" | null,     # multicast group (vxlan multicast)
        "public": false,                 # addresses routed to the uplink (proxy ARP / routes)
        "masquerade": false              # outbound NAT through the host's uplink
      },
      "rules": [rule, ...],              # security groups, resolved (see below); [] = none
      "security_groups": [0, 5]
    }
    rule = {"direction": "inbound" | "outbound", "protocol": "TCP" | "UDP" | "ICMP" |
            "ICMPv6" | "IPSEC" | "ALL", "ports": [[22, 22], [80, 90]] | null,
            "icmp_type": 8 | null, "cidrs": ["198.18.0.0/24", ...] | null}
            # cidrs null = any; a rule naming another security group arrives expanded into
            # the addresses of that group's NICs (the front-end re-sends on change)
    host_net = {
      "address": "198.18.0.10",          # this host's underlay address (VXLAN local, BGP id)
      "peers": ["198.18.0.11", ...],      # other hosts of the cluster (flood list, BGP)
      "asn": 65000,                       # EVPN: BGP AS of the cluster
      "route_reflector": "198.18.0.10",   # EVPN: the cluster's RR (first host, or configured)
      "frr_name": "ec-1a2b3c4d"           # FRR pathspace (-N) of this host
    }

Refinements (optional fields, defaults in brackets)::

    vnet.filter_ip_spoofing   [false] a filtered NIC may also only send its own IPv4
                              source address and ARP sender address
    host_net.uplink           [the device that carries host_net.address] the device
                              masquerade leaves by, public addresses are proxy-ARPed on,
                              a multicast VXLAN without phydev hangs off
    host_net.route_reflector  null: every host peers with every other (full mesh)

- ``rules: []`` means the NIC is not filtered at all. A filtered NIC's inbound traffic is
  denied unless a rule allows it (replies to its own connections always pass: the rules
  are stateful); outbound is open unless the NIC has at least one outbound rule, then it
  is denied unless a rule allows it. IPv6 neighbour discovery always passes.
- vlan devices are ``<phydev>.<vlan_id>``, or ``ec<vlan_id>v<6 hex of the phydev>`` when
  that is longer than 15 characters; VXLAN devices are ``vxlan<vni>``.
- ``public``: a host route ``<ip>/32 dev <bridge>`` and proxy ARP on the uplink and the
  bridge (IPv4; an IPv6 address gets the route but no proxy NDP). ``masquerade``: the
  gateway address on the bridge and ``masquerade`` out of the uplink for the NIC's subnet.
  Both turn on IPv4 forwarding; clean puts every sysctl back once no guest needs it.
- vxlan/evpn need ``host_net.address`` (evpn: IPv4, it is the BGP router id).

Guest-side names: the tap of VM n NIC i is ``ec<n>n<i>`` (kvm, microvm; a veth of that
name for lxc, its peer inside the container is eth<i>); its MAC must be the NIC's ``mac``
(security groups recognise the NIC by it). Every nftables object lives in one table per
family named ``edgecloud`` (``inet``: stateful filtering, NAT; ``bridge``: per-port MAC
checks); a NIC's chains are ``<tap>-in`` / ``<tap>-out`` (see nft.py).

Entry points (host.py; the hypervisor code calls them around a guest's life)::

    pre(root, nics, host_net, guest)     before the guest starts: bridges, 802.1Q/VXLAN
                                         devices, flood lists, FRR (evpn); undone on failure
    plug(root, nic, ifname)              the tap/veth joins the bridge (MTU, up)
    post(root, nics, host_net, guest)    security groups, public routes, masquerade
    update_sg(root, nics, guest)         the rules again (node action ``net_update_sg``)
    clean(root, nics, host_net, guest)   the guest's routes, chains, leftover taps; then what
                                         no guest under ROOT needs any more
    forget(root, nic_ids, guest)         the same for some NICs of a running guest (NIC
                                         hot-detach: node.hotplug); its other NICs stay

State under ROOT: ``net/registry.json`` + ``net/lock`` (registry.py: which guest uses what,
which devices this code created — only those are ever deleted), ``frr/<frr_name>/`` (FRR's
configs, pid files and logs while an evpn vnet is in use; sockets in
/var/run/frr/<frr_name>/).
"""

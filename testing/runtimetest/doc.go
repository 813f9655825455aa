// Package runtimetest runs real container runtimes, and real CNI tools,
// as test fixtures, so that the runtime plugins (CNI, Docker's remote
// network driver, netavark) are tested against the clients people use
// and not against our reading of their protocols.
//
// Every fixture is bound to a testing.TB and undone in t.Cleanup. It
// skips the test, saying why, only when its tool is not installed
// (.ci/run installs them all) or the kernel refuses; a tool that is
// installed but fails fails the test with its output. Fixtures never use
// the machine's own state: each runtime gets directories, sockets and
// configuration of its own under a temporary directory, and reads no
// configuration of the machine's. Two exceptions, both per container
// and removed with it: runc keeps the state of podman's containers in
// /run/runc/ID, and the CNI library keeps results in /var/lib/cni for
// podman and cnitool (give host-local a dataDir, as the tests here do,
// to keep its leases out of /var/lib/cni too).
//
//   - Rootfs: a root filesystem tree made of Debian's static busybox
//     (busybox-static): /bin/busybox, a link for each applet (sh, ip,
//     nc, httpd, wget, udhcpc, ...), /etc/passwd, group, hosts, and
//     empty mount points. It needs no image registry: `podman run
//     --rootfs DIR`, `ctr run --rootfs DIR`; Tarball makes the tar file
//     `docker import` reads.
//
//   - Podman: Debian's podman 4.3.1 with its own --root, --runroot
//     and --tmpdir, the vfs storage driver, and a containers.conf and
//     storage.conf of its own (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF):
//     the CNI network backend with the test's plugin directories ahead of
//     /usr/lib/cni, its own network config dir, runc and cgroupfs, file
//     events and file locks (not the shared memory lock other podmans
//     use), nofile and nproc ulimits of 1024. Opts.NetNS runs podman,
//     and so the CNI plugins it runs, inside a namespace the test made,
//     so that a reference bridge never lands in the host's namespace.
//     Cleanup removes every container, pod and network it knows, then
//     unmounts and removes its directory.
//
//   - Dockerd: Debian's dockerd 20.10 with --iptables=false,
//     --ip-forward=false, --ip-masq=false and --bridge=none (it touches
//     no namespace but its containers'), vfs storage, cgroupfs, its own
//     data root, exec root, pidfile and API socket, and the containerd
//     it manages itself. It runs in a mount namespace of its own whose
//     /run is an empty tmpfs, so it finds no system containerd and
//     writes nothing to the machine's /run; there /run/docker/plugins is
//     the fixture's PluginDir (a remote driver serving
//     PluginDir/switchyard.sock is found as "switchyard") and
//     /etc/docker its own (plugin spec files, key.json). Docker runs
//     Debian's client (/usr/bin/docker) against it; BusyboxImage imports
//     Rootfs's tarball. Cleanup removes every container, stops dockerd
//     by PID and kills anything left in its mount namespace.
//
//   - Containerd: Debian's containerd 1.6 with a config of its own
//     (root, state, temp, gRPC and ttrpc sockets under its directory;
//     debug and metrics off; the CRI plugin's CNI bin and conf dirs
//     set), in a mount namespace whose /run is an empty tmpfs (where it
//     keeps shim sockets and runc's state, whatever its config says).
//     Ctr runs `ctr --address SOCK` in a child of that namespace where
//     the fixed paths ctr --cni reads, /etc/cni/net.d and /opt/cni/bin,
//     are the fixture's CNIConfDir and a directory of links to the
//     test's and the reference plugins. Cleanup kills every task,
//     removes every container, stops containerd by PID and kills
//     anything left in its mount namespace.
//
//   - Cnitool: cnitool built with `go install` from the Go module proxy
//     (the version of github.com/containernetworking/cni in go.mod, or
//     CnitoolDefaultVersion), once per test binary, into the user's
//     cache directory, where later runs find it.
//
// Opts.NetNS runs a runtime (podman, the daemons, ctr) inside a network
// namespace the test made, so the bridges and routes that reference CNI
// plugins create land there.
//
// Leftovers lists the processes of a test binary's fixtures still running;
// call it from TestMain after m.Run, as this package does.
//
// Tests using them send traffic only to loopback and into namespaces the
// test created (testing/netnstest), and give the reference bridge plugin
// no gateway address, so no namespace gains a route to a test subnet.
package runtimetest

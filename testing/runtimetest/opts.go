package runtimetest

// Opts configures a fixture. Each field says which fixtures read it; the
// zero value gives a fixture that uses only the reference CNI plugins
// and directories of its own.
type Opts struct {
	// CNIPluginDirs are searched for CNI plugins before /usr/lib/cni
	// (Debian's containernetworking-plugins): the directory holding a
	// `switchyard` plugin under test, say. Podman, Containerd.
	CNIPluginDirs []string
	// CNIConfDir is the CNI network configuration directory; empty means
	// one of the fixture's own (PodmanRuntime.NetworkConfigDir,
	// ContainerdDaemon.CNIConfDir), made empty. Podman, Containerd.
	CNIConfDir string
	// NetNS, if set, is the path of a network namespace (a netnstest.NS's
	// Path) that the runtime runs in: podman commands, and the dockerd
	// and containerd daemons, are started in it through nsenter, so the
	// bridges and routes reference CNI plugins create land there and not
	// in the host's namespace. Podman, Dockerd, Containerd.
	NetNS string
	// Env is added to the environment of the runtime's processes (and so
	// of the CNI plugins they run). Podman, Dockerd, Containerd.
	Env []string
	// DockerPlugins names plugins for dockerd to find, by plugin name
	// (as in `docker network create -d NAME`), each with the unix socket
	// it serves on; Dockerd writes their spec files. Dockerd.
	DockerPlugins map[string]string
}

// cniPluginDirs is the fixture's plugin search path: the test's own
// directories, then the reference plugins.
func (o Opts) cniPluginDirs() []string {
	return append(append([]string(nil), o.CNIPluginDirs...), ReferenceCNIDir)
}

// ReferenceCNIDir is where Debian's containernetworking-plugins installs
// the reference CNI plugins (bridge, host-local, loopback, portmap, ...).
const ReferenceCNIDir = "/usr/lib/cni"

package runtimetest_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// uniqueName returns prefix followed by random hex, short enough for an
// interface name (15 bytes).
func uniqueName(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// bridgeName returns a unique bridge name for a test whose bridge must
// land in a namespace of its own; should a broken fixture put it in the
// host's namespace instead, the test deletes it there when it ends.
func bridgeName(t *testing.T) string {
	br := uniqueName("syrt")
	t.Cleanup(func() {
		if exec.Command("ip", "link", "show", "dev", br).Run() == nil {
			exec.Command("ip", "link", "del", "dev", br).Run()
		}
	})
	return br
}

// bridgeConflist writes, in dir, a CNI network configuration list named
// name for the reference bridge plugin: bridge device br, no address on
// it (isGateway false, no masquerading, so whatever namespace it lands
// in gets no route to subnet), host-local addresses from subnet kept
// under dataDir. It returns the file's path.
func bridgeConflist(t *testing.T, dir, name, br, subnet, dataDir string) string {
	t.Helper()
	conf := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": %q,
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": false,
    "ipMasq": false,
    "ipam": {
      "type": "host-local",
      "dataDir": %q,
      "ranges": [[{"subnet": %q}]]
    }
  }]
}
`, name, br, dataDir, subnet)
	path := filepath.Join(dir, name+".conflist")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runCombined runs a command and returns its combined output.
func runCombined(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

package tunnel_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/tunnel"
)

func TestLoadKeyForms(t *testing.T) {
	want := testKey(20)
	dir := t.TempDir()
	for name, text := range map[string]string{
		"hex":            hex.EncodeToString(want[:]),
		"HEX with CRLF":  strings.ToUpper(hex.EncodeToString(want[:])) + "\r\n",
		"base64":         want.Base64(),
		"base64 + space": "  " + want.Base64() + "\n\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := tunnel.LoadKey(path)
		if err != nil || got != want {
			t.Errorf("LoadKey of a %s key: equal %v, err %v", name, got == want, err)
		}
	}
}

func TestLoadKeyErrors(t *testing.T) {
	dir := t.TempDir()
	secret := testKey(21)
	for name, text := range map[string]string{
		"short hex":      hex.EncodeToString(secret[:31]),
		"bad hex":        "zz" + hex.EncodeToString(secret[:])[2:],
		"bad base64":     "!" + secret.Base64()[1:],
		"base64 raw":     strings.TrimRight(secret.Base64(), "="),
		"all zero":       strings.Repeat("0", 64),
		"empty":          "",
		"two keys":       secret.Base64() + "\n" + secret.Base64(),
		"huge":           strings.Repeat("a", 5000),
		"base64 of 33 b": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := tunnel.LoadKey(path)
		if !errors.Is(err, tunnel.ErrKeyFormat) {
			t.Errorf("%s: err %v, want ErrKeyFormat", name, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, path) || !strings.Contains(msg, "64 hex") || !strings.Contains(msg, "44 base64") {
			t.Errorf("%s: error %q does not name the file and the accepted forms", name, msg)
		}
		if len(text) > 8 && strings.Contains(msg, text[4:12]) {
			t.Errorf("%s: error %q quotes the file's content", name, msg)
		}
	}
	missing := filepath.Join(dir, "nope")
	if _, err := tunnel.LoadKey(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
}

func TestGenerateKey(t *testing.T) {
	a, b := tunnel.GenerateKey(), tunnel.GenerateKey()
	if a == b || a == (tunnel.Key{}) {
		t.Fatal("GenerateKey returned a repeated or zero key")
	}
	back, err := tunnel.ParseKey(a.Base64())
	if err != nil || back != a {
		t.Fatalf("ParseKey(Base64()) round trip: equal %v, err %v", back == a, err)
	}
}

func TestKeyNotPrinted(t *testing.T) {
	k := testKey(22)
	for _, verb := range []string{"%v", "%s", "%+v", "%#v"} {
		if out := fmt.Sprintf(verb, k); strings.Contains(out, fmt.Sprint(k[1])) && !strings.Contains(out, "redacted") {
			t.Errorf("Sprintf(%q, key) = %q reveals the key", verb, out)
		}
	}
	if strings.Contains(fmt.Sprintf("%v", k), hex.EncodeToString(k[:4])) {
		t.Errorf("formatting a key with %%v prints its bytes")
	}
}

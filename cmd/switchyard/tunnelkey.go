package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-net/switchyard/daemon/api"
)

func rotateKeyCommand() *cli.Command {
	return &cli.Command{
		Name:  "rotate-key",
		Usage: "replace a sealed tunnel's key without losing frames",
		Description: "Run it on every host of the network within --window of the first. Each host accepts the\n" +
			"new key at once, seals under it after --window and drops the old key after twice --window.\n" +
			"--window 0 replaces every key at once: for a stolen key, at the cost of the frames other\n" +
			"hosts still seal under the old one until they rotate too.",
		ArgsUsage: "NETWORK",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "key-file", Usage: "the new key (44 base64 or 64 hex characters), the same file on every host"},
			&cli.StringFlag{Name: "window", Usage: "how long every host has to rotate after the first, like 60s or 5m", DefaultText: "60s"},
			formatFlag,
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "NETWORK"); err != nil {
				return err
			}
			req := api.KeyRotation{KeyFile: c.String("key-file"), Window: c.String("window")}
			if req.KeyFile != "" {
				if abs, err := filepath.Abs(req.KeyFile); err == nil {
					req.KeyFile = abs
				}
			}
			cl, ctx, cancel := client(c)
			defer cancel()
			t, err := cl.RotateTunnelKey(ctx, c.Args().First(), req)
			if err != nil {
				return err
			}
			return output(c, t, func(w io.Writer) { printRotation(w, t) })
		},
	}
}

func printRotation(w io.Writer, t api.Tunnel) {
	if t.Keys == nil {
		return
	}
	r := t.Keys.Rotation
	if r == nil {
		fmt.Fprintf(w, "%s: key replaced, sealing under key %s alone\n", t.Network, keyID(t.Keys.SendID))
		return
	}
	fmt.Fprintf(w, "%s: accepting key %s; sealing under it from %s, old key dropped at %s\n",
		t.Network, keyID(r.KeyID), r.SendAt.Local().Format(time.TimeOnly), r.DropAt.Local().Format(time.TimeOnly))
}

// printTunnelKeys is tunnel ls's line about a sealed tunnel's keys.
func printTunnelKeys(w io.Writer, k *api.TunnelKeys) {
	if k == nil {
		return
	}
	acc := make([]string, len(k.Accepted))
	for i, a := range k.Accepted {
		acc[i] = fmt.Sprintf("%s (%d datagrams)", keyID(a.ID), a.RXDatagrams)
	}
	fmt.Fprintf(w, "keys: sealing under %s, accepting %s", keyID(k.SendID), strings.Join(acc, ", "))
	if r := k.Rotation; r != nil {
		fmt.Fprintf(w, "; rotating to %s: sealing under it from %s, old keys dropped at %s",
			keyID(r.KeyID), r.SendAt.Local().Format(time.TimeOnly), r.DropAt.Local().Format(time.TimeOnly))
	}
	fmt.Fprintln(w)
}

func keyID(id uint16) string { return fmt.Sprintf("%04x", id) }

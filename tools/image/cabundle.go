package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"runtime/debug"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// bundleModule embeds Mozilla's NSS roots; go.mod pins its version, so every machine
// writes the same /etc/ssl/certs/ca-certificates.crt, and none needs one of its own.
const bundleModule = "golang.org/x/crypto/x509roots/fallback"

// caBundle is the module's roots as PEM, in the module's order, after a comment naming
// the module and its version (text outside PEM blocks is ignored by Go, OpenSSL and
// curl). A root with a constraint X.509 cannot express (a distrust-after date) is left
// out: a PEM file would trust it without the constraint.
func caBundle() ([]byte, error) {
	version := "(unknown)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == bundleModule {
				version = m.Version
			}
		}
	}
	roots, err := bundleRoots()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Mozilla's NSS roots from %s %s, without constrained roots.\n", bundleModule, version)
	for _, der := range roots {
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// bundleRoots is the module's unconstrained roots (DER), in the module's order.
func bundleRoots() ([][]byte, error) {
	var out [][]byte
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if _, err := x509.ParseCertificate(r.Certificate); err != nil {
			return nil, fmt.Errorf("%s: a root does not parse: %w", bundleModule, err)
		}
		out = append(out, r.Certificate)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no unconstrained root", bundleModule)
	}
	return out, nil
}

// printCAFingerprints writes the SHA-256 of each root caBundle holds, one per line in
// hex, in its order: what e2e's image test compares the image's bundle with.
func printCAFingerprints(w io.Writer) error {
	roots, err := bundleRoots()
	if err != nil {
		return err
	}
	for _, der := range roots {
		sum := sha256.Sum256(der)
		if _, err := fmt.Fprintf(w, "%x\n", sum); err != nil {
			return err
		}
	}
	return nil
}

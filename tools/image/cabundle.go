package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
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
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Mozilla's NSS roots from %s %s, without constrained roots.\n", bundleModule, version)
	n := 0
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if _, err := x509.ParseCertificate(r.Certificate); err != nil {
			return nil, fmt.Errorf("%s: a root does not parse: %w", bundleModule, err)
		}
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no unconstrained root", bundleModule)
	}
	return buf.Bytes(), nil
}

// Command image writes the prom-tenant container image without a container engine
// (make image): an OCI image layout directory and a `docker load`/`podman load` tarball
// holding a static caddy, a CA bundle, a passwd entry for nobody and the directories the
// Kubernetes manifests mount. It is its own module so that the main module does not depend
// on go-containerregistry.
//
// The image is the one the repository's Dockerfile describes (a test compares the two):
// keep the config below and the Dockerfile's final stage in step.
//
// Every timestamp is -epoch (SOURCE_DATE_EPOCH: the last commit's time), the files are
// written in a fixed order with fixed owners, and the CA bundle comes from a pinned module
// (cabundle.go), not from the host, so the same inputs give the same digest anywhere.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The runtime configuration; the Dockerfile's final stage says the same.
const (
	user = "65534:65534"
	// Caddy autosaves its config under XDG_CONFIG_HOME and keeps certificates and the
	// copier's state under XDG_DATA_HOME. /tmp is the one writable place under a read-only
	// root filesystem (the Deployment mounts an emptyDir there).
	xdgConfigHome = "/tmp/config"
	xdgDataHome   = "/tmp/data"
	// Docker's default, which `docker build` writes for a scratch image too.
	pathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

var (
	entrypoint = []string{"caddy"}
	cmd        = []string{"run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"}
	// The ports of deploy/kubernetes's Caddyfile: the proxy and the probes' listener.
	exposed = []string{"9091/tcp", "8080/tcp"}
)

func main() {
	var (
		caddyBin = flag.String("caddy", "", "the static caddy binary to install as /usr/bin/caddy (required)")
		version  = flag.String("version", "dev", "the image's version: its tag and its org.opencontainers.image.version label")
		revision = flag.String("revision", "unknown", "the source's revision (git describe): the org.opencontainers.image.revision label")
		repo     = flag.String("repository", "ghcr.io/prom-tenant/caddy-prom-tenant", "the image's name in the tarball")
		source   = flag.String("source", "https://github.com/prom-tenant/caddy-prom-tenant", "org.opencontainers.image.source")
		licenses = flag.String("licenses", "Apache-2.0", "org.opencontainers.image.licenses (SPDX)")
		epoch    = flag.Int64("epoch", 0, "every timestamp in the image, in seconds since 1970 (SOURCE_DATE_EPOCH)")
		arch     = flag.String("arch", runtime.GOARCH, "the architecture the caddy binary was built for")
		out      = flag.String("layout", "", "the OCI image layout directory to write (replaced)")
		tarPath  = flag.String("tar", "", "the docker-archive tarball to write, for docker/podman load (optional)")
		printCA  = flag.Bool("print-ca", false, "print the SHA-256 fingerprints of the image's CA bundle's roots, one per line, and exit")
	)
	flag.Parse()
	if *printCA {
		if err := printCAFingerprints(os.Stdout); err != nil {
			log.Fatalf("image: %v", err)
		}
		return
	}
	if *caddyBin == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*caddyBin, *version, *revision, *repo, *source, *licenses, time.Unix(*epoch, 0).UTC(), *arch, *out, *tarPath); err != nil {
		log.Fatalf("image: %v", err)
	}
}

func run(caddyBin, version, revision, repo, source, licenses string, created time.Time, arch, out, tarPath string) error {
	tag, err := name.NewTag(repo + ":" + version)
	if err != nil {
		return fmt.Errorf("version %q is not an image tag: %w", version, err)
	}
	ca, err := caBundle()
	if err != nil {
		return err
	}
	caddy, err := os.ReadFile(caddyBin)
	if err != nil {
		return err
	}

	// Two layers: the rarely changing base, then the binary, which changes with every commit.
	base, err := layer(created, []file{
		{name: "etc/", mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, data: []byte("nogroup:x:65534:\n")},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		// Mount points of the Deployment: the Caddyfile and the tenants' manifests.
		{name: "etc/caddy/", mode: 0o755},
		{name: "etc/prom-tenant/", mode: 0o755},
		{name: "etc/prom-tenant/tenants/", mode: 0o755},
		{name: "tmp/", mode: 0o1777},
	})
	if err != nil {
		return err
	}
	bin, err := layer(created, []file{
		{name: "usr/", mode: 0o755},
		{name: "usr/bin/", mode: 0o755},
		{name: "usr/bin/caddy", mode: 0o755, data: caddy},
	})
	if err != nil {
		return err
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "make image: CA certificates, nobody, mount points, /tmp", Comment: "tools/image"}},
		mutate.Addendum{Layer: bin, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "make image: /usr/bin/caddy", Comment: "tools/image"}},
	)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	cf.OS, cf.Architecture = "linux", arch
	ports := map[string]struct{}{}
	for _, p := range exposed {
		ports[p] = struct{}{}
	}
	cf.Config = v1.Config{
		User:         user,
		Entrypoint:   entrypoint,
		Cmd:          cmd,
		Env:          []string{"PATH=" + pathEnv, "XDG_CONFIG_HOME=" + xdgConfigHome, "XDG_DATA_HOME=" + xdgDataHome},
		ExposedPorts: ports,
		Labels: map[string]string{
			"org.opencontainers.image.title":       "prom-tenant",
			"org.opencontainers.image.description": "Caddy with the prom-tenant modules: a multi-tenant proxy for Prometheus",
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.revision":    revision,
			"org.opencontainers.image.source":      source,
			"org.opencontainers.image.licenses":    licenses,
		},
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}

	// layout.Write appends to an existing index: start from nothing, or a rebuild would
	// list the image twice.
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	// ref.name is the tag, as `skopeo copy oci:<dir>:<tag>` reads it; containerd's
	// image.name is the whole reference (ctr import reads it, and so do the tests, to
	// find the image a load of the tarball created).
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": version,
		"io.containerd.image.name":          tag.String(),
	})); err != nil {
		return err
	}
	if tarPath != "" {
		if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
			return err
		}
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", tag, d)
	return nil
}

// A file is one entry of a layer; a name ending in / is a directory.
type file struct {
	name string
	mode int64
	data []byte
}

// layer is an uncompressed tar of files, owned by root, all dated created, gzipped by
// go-containerregistry (deterministically: no name or time in the gzip header).
func layer(created time.Time, files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: created}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

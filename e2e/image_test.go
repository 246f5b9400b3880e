package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/x509"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/prom-tenant/caddy-prom-tenant/internal/testenv"
)

// The image make image writes (bin/image, an OCI image layout), opened as a registry or a
// runtime would: index → manifest → config and layers, every blob checked against its
// digest. Expected: what the Dockerfile's final stage says, and the paths the Kubernetes
// manifests mount.

// builtImage is an image read from an OCI layout.
type builtImage struct {
	ref      string // the org.opencontainers.image.ref.name annotation: the tag
	name     string // the io.containerd.image.name annotation: repository:tag, as loaded
	digest   string // of the manifest
	manifest ocispec.Manifest
	config   ocispec.Image
	files    map[string]imageFile // the layers applied in order, by path without the leading /
}

type imageFile struct {
	hdr  *tar.Header
	data []byte
}

// imageLayout is bin/image; under PROM_TENANT_E2E=1 its absence fails the test.
func imageLayout(t *testing.T) string {
	t.Helper()
	testenv.RequireE2E(t)
	dir := filepath.Join(testenv.RepoRoot(), "bin", "image")
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		t.Fatalf("%s=1 but there is no image: %v (run make image)", testenv.EnvE2E, err)
	}
	return dir
}

func readImage(t *testing.T, dir string) *builtImage {
	t.Helper()
	var index ocispec.Index
	readJSON(t, filepath.Join(dir, "index.json"), &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(index.Manifests))
	}
	md := index.Manifests[0]
	if md.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("manifest media type %q, want %q", md.MediaType, ocispec.MediaTypeImageManifest)
	}
	img := &builtImage{ref: md.Annotations[ocispec.AnnotationRefName], name: md.Annotations[containerdImageName], digest: md.Digest.String(), files: map[string]imageFile{}}
	if err := json.Unmarshal(blob(t, dir, md), &img.manifest); err != nil {
		t.Fatal(err)
	}
	if img.manifest.Config.MediaType != ocispec.MediaTypeImageConfig {
		t.Fatalf("config media type %q", img.manifest.Config.MediaType)
	}
	if err := json.Unmarshal(blob(t, dir, img.manifest.Config), &img.config); err != nil {
		t.Fatal(err)
	}
	if len(img.config.RootFS.DiffIDs) != len(img.manifest.Layers) {
		t.Fatalf("%d diff IDs for %d layers", len(img.config.RootFS.DiffIDs), len(img.manifest.Layers))
	}
	for i, ld := range img.manifest.Layers {
		if ld.MediaType != ocispec.MediaTypeImageLayerGzip {
			t.Fatalf("layer %d: media type %q", i, ld.MediaType)
		}
		zr, err := gzip.NewReader(bytes.NewReader(blob(t, dir, ld)))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := "sha256:"+hexSHA256(raw), img.config.RootFS.DiffIDs[i].String(); got != want {
			t.Fatalf("layer %d: uncompressed digest %s, config says %s", i, got, want)
		}
		tr := tar.NewReader(bytes.NewReader(raw))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			img.files[strings.TrimSuffix(path.Clean(h.Name), "/")] = imageFile{h, data}
		}
	}
	return img
}

// containerdImageName is the index annotation with the whole reference (containerd's, read
// by ctr import); ref.name holds only the tag.
const containerdImageName = "io.containerd.image.name"

// blob reads a blob of the layout and checks its size and digest.
func blob(t *testing.T, dir string, d ocispec.Descriptor) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != d.Size || "sha256:"+hexSHA256(b) != d.Digest.String() {
		t.Fatalf("blob %s: %d bytes with digest sha256:%s, descriptor says %d bytes", d.Digest, len(b), hexSHA256(b), d.Size)
	}
	return b
}

func hexSHA256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// treeRevision is the revision make image stamps: git describe of this tree, or unknown
// outside a git checkout (the Makefile's fallback).
func treeRevision(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", testenv.RepoRoot(), "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// dockerStage is the runtime configuration a Dockerfile's last stage declares.
type dockerStage struct {
	user        string
	entrypoint  []string
	cmd         []string
	env, labels map[string]string
	exposed     []string // as in an image config: 9091/tcp
	copied      []string // the destinations of its COPY instructions
}

// parseDockerfile reads the instructions of the last stage (after the last FROM) that
// an image config carries. ARG references are replaced with args.
func parseDockerfile(t *testing.T, file string, args map[string]string) dockerStage {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var cont strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && cont.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(l, `\`); ok {
			cont.WriteString(s + " ")
			continue
		}
		cont.WriteString(l)
		lines = append(lines, cont.String())
		cont.Reset()
	}
	last := -1
	for i, l := range lines {
		if strings.EqualFold(strings.Fields(l)[0], "FROM") {
			last = i
		}
	}
	if last < 0 {
		t.Fatalf("%s: no FROM", file)
	}
	st := dockerStage{env: map[string]string{}, labels: map[string]string{}}
	for _, l := range lines[last+1:] {
		instr, rest, _ := strings.Cut(l, " ")
		rest = os.Expand(strings.TrimSpace(rest), func(k string) string { return args[k] })
		switch strings.ToUpper(instr) {
		case "USER":
			st.user = rest
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				t.Fatalf("%s: %s is not in exec form: %v", file, l, err)
			}
			if strings.ToUpper(instr) == "CMD" {
				st.cmd = v
			} else {
				st.entrypoint = v
			}
		case "ENV", "LABEL":
			m := st.env
			if strings.ToUpper(instr) == "LABEL" {
				m = st.labels
			}
			for _, kv := range dockerWords(t, rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("%s: %s: %q is not key=value", file, instr, kv)
				}
				if uq, err := strconv.Unquote(v); err == nil {
					v = uq
				}
				m[k] = v
			}
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				st.exposed = append(st.exposed, p)
			}
		case "COPY":
			f := strings.Fields(rest)
			st.copied = append(st.copied, f[len(f)-1])
		}
	}
	return st
}

// dockerWords splits at spaces outside double quotes.
func dockerWords(t *testing.T, s string) []string {
	var words []string
	var w strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
			w.WriteByte(c)
		case c == '\\' && quoted && i+1 < len(s):
			w.WriteByte(c)
			i++
			w.WriteByte(s[i])
		case c == ' ' && !quoted:
			if w.Len() > 0 {
				words = append(words, w.String())
				w.Reset()
			}
		default:
			w.WriteByte(c)
		}
	}
	if quoted {
		t.Fatalf("unterminated quote in %q", s)
	}
	if w.Len() > 0 {
		words = append(words, w.String())
	}
	return words
}

// TestImageConfig: the image runs caddy with the Caddyfile the manifests mount, as nobody,
// with the labels registries show, and says what the Dockerfile says.
func TestImageConfig(t *testing.T) {
	img := readImage(t, imageLayout(t))
	version, revision := testenv.ChartAppVersion(t), treeRevision(t)
	if img.ref != version {
		t.Errorf("tag (ref.name) %q, want %q (Chart.yaml's appVersion): the image is stale, run make image", img.ref, version)
	}
	if want := "ghcr.io/prom-tenant/caddy-prom-tenant:" + version; img.name != want {
		t.Errorf("%s %q, want %q", containerdImageName, img.name, want)
	}
	c := img.config.Config
	// What users and the Deployment rely on, stated here independently of the Dockerfile.
	if c.User != "65534:65534" {
		t.Errorf("user %q, want 65534:65534", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"caddy"}) || !slices.Equal(c.Cmd, []string{"run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"}) {
		t.Errorf("entrypoint %q, cmd %q: want caddy run --config /etc/caddy/Caddyfile --adapter caddyfile", c.Entrypoint, c.Cmd)
	}
	if img.config.OS != "linux" || img.config.Architecture == "" {
		t.Errorf("platform %s/%s", img.config.OS, img.config.Architecture)
	}
	lic, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(lic, []byte("Apache License")) || !bytes.Contains(lic, []byte("Version 2.0, January 2004")) {
		t.Fatal("LICENSE is no longer the Apache License 2.0: change the image's licenses label (Dockerfile, tools/image) and this test")
	}
	for k, want := range map[string]string{
		ocispec.AnnotationVersion:  version,
		ocispec.AnnotationRevision: revision,
		ocispec.AnnotationSource:   "https://github.com/prom-tenant/caddy-prom-tenant",
		ocispec.AnnotationLicenses: "Apache-2.0",
	} {
		if got := c.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{ocispec.AnnotationTitle, ocispec.AnnotationDescription} {
		if c.Labels[k] == "" {
			t.Errorf("label %s missing", k)
		}
	}

	// The Dockerfile describes the same image.
	df := parseDockerfile(t, filepath.Join(testenv.RepoRoot(), "Dockerfile"), map[string]string{"VERSION": version, "REVISION": revision})
	if df.user != c.User {
		t.Errorf("Dockerfile USER %q, image %q", df.user, c.User)
	}
	if !slices.Equal(df.entrypoint, c.Entrypoint) || !slices.Equal(df.cmd, c.Cmd) {
		t.Errorf("Dockerfile ENTRYPOINT %q CMD %q, image %q %q", df.entrypoint, df.cmd, c.Entrypoint, c.Cmd)
	}
	env := map[string]string{}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if fmt.Sprint(df.env) != fmt.Sprint(env) {
		t.Errorf("Dockerfile ENV %v, image %v", df.env, env)
	}
	if fmt.Sprint(df.labels) != fmt.Sprint(c.Labels) {
		t.Errorf("Dockerfile LABEL %v, image %v", df.labels, c.Labels)
	}
	var ports []string
	for p := range c.ExposedPorts {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	slices.Sort(df.exposed)
	if !slices.Equal(df.exposed, ports) {
		t.Errorf("Dockerfile EXPOSE %v, image %v", df.exposed, ports)
	}
	for _, dst := range df.copied {
		if dst == "/" {
			continue
		}
		if _, ok := img.files[strings.TrimPrefix(path.Clean(dst), "/")]; !ok {
			t.Errorf("the Dockerfile copies %s, the image has no such file", dst)
		}
	}
}

// TestImageFiles: no shell, the CA bundle, nobody, the mount points, a writable /tmp for
// Caddy's XDG directories, and a static caddy with every module of this repository.
func TestImageFiles(t *testing.T) {
	img := readImage(t, imageLayout(t))
	if img.config.Created == nil {
		t.Fatal("the image config has no creation time")
	}
	for name, f := range img.files {
		if base := path.Base(name); base == "sh" || base == "bash" || base == "busybox" {
			t.Errorf("the image has a shell: /%s", name)
		}
		if f.hdr.Uid != 0 || f.hdr.Gid != 0 {
			t.Errorf("/%s is owned by %d:%d, want root: nobody must not be able to change it", name, f.hdr.Uid, f.hdr.Gid)
		}
		if f.hdr.ModTime.Unix() != img.config.Created.Unix() {
			t.Errorf("/%s dated %v, the image %v: timestamps must all be the commit's", name, f.hdr.ModTime, img.config.Created)
		}
	}
	file := func(name string) imageFile {
		t.Helper()
		f, ok := img.files[name]
		if !ok {
			t.Fatalf("the image has no /%s", name)
		}
		return f
	}
	checkCABundle(t, file("etc/ssl/certs/ca-certificates.crt").data)
	if !strings.Contains(string(file("etc/passwd").data), ":65534:65534:") {
		t.Errorf("/etc/passwd has no user 65534: %q", file("etc/passwd").data)
	}
	for _, d := range []string{"etc/caddy", "etc/prom-tenant/tenants"} {
		if f := file(d); f.hdr.Typeflag != tar.TypeDir {
			t.Errorf("/%s is not a directory", d)
		}
	}
	// Caddy writes its autosave and data under XDG_CONFIG_HOME and XDG_DATA_HOME (and
	// creates them): their parent must be a directory anyone may write to.
	for _, kv := range img.config.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		if k != "XDG_CONFIG_HOME" && k != "XDG_DATA_HOME" {
			continue
		}
		parent := strings.TrimPrefix(path.Dir(v), "/")
		if f := file(parent); f.hdr.Typeflag != tar.TypeDir || f.hdr.Mode&0o1777 != 0o1777 {
			t.Errorf("%s=%s: /%s is not a sticky directory anyone may write to (mode %o)", k, v, parent, f.hdr.Mode)
		}
	}

	caddyFile := file("usr/bin/caddy")
	if caddyFile.hdr.Mode&0o111 == 0 {
		t.Fatalf("/usr/bin/caddy is not executable (mode %o)", caddyFile.hdr.Mode)
	}
	bin := filepath.Join(t.TempDir(), "caddy")
	if err := os.WriteFile(bin, caddyFile.data, 0o755); err != nil {
		t.Fatal(err)
	}
	// Static: a scratch image has no dynamic loader or libc.
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, _ := ef.ImportedLibraries()
	if interp := ef.Section(".interp"); interp != nil || len(libs) > 0 {
		t.Errorf("/usr/bin/caddy is dynamically linked (%v): build it with CGO_ENABLED=0", libs)
	}
	ef.Close()

	out, err := exec.Command(bin, "version").CombinedOutput()
	if want := "prom-tenant/" + testenv.ChartAppVersion(t) + " (" + treeRevision(t) + ") "; err != nil || !strings.HasPrefix(string(out), want) {
		t.Errorf("caddy version: %q (%v), want it to start with %q", out, err, want)
	}
	// Every module this repository registers: the non-standard ones of bin/caddy (built
	// from the same cmd/caddy), so that a new module cannot be missing from the image.
	ours := nonStandardModules(t, testenv.CaddyBinary())
	if !slices.Contains(ours, "http.handlers.prom_tenant") || !slices.Contains(ours, "prom_tenancy") {
		t.Fatalf("%s list-modules --skip-standard: %q, without prom_tenant or prom_tenancy", testenv.CaddyBinary(), ours)
	}
	inImage := nonStandardModules(t, bin)
	for _, m := range ours {
		if !slices.Contains(inImage, m) {
			t.Errorf("module %s is missing from the image's caddy", m)
		}
	}
}

// checkCABundle: the image's CA bundle is Mozilla's roots from the module tools/image/go.mod
// pins (its first line names it), not the build machine's, and every block is a
// certificate; more than 100 of them, as Mozilla's store has.
func checkCABundle(t *testing.T, pemData []byte) {
	t.Helper()
	const module = "golang.org/x/crypto/x509roots/fallback"
	gomod, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "tools", "image", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(module) + `\s+(\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatalf("tools/image/go.mod does not require %s", module)
	}
	first, _, _ := bytes.Cut(pemData, []byte("\n"))
	if want := fmt.Sprintf("# Mozilla's NSS roots from %s %s,", module, m[1]); !strings.HasPrefix(string(first), want) {
		t.Errorf("/etc/ssl/certs/ca-certificates.crt begins %q, want %q...: not the pinned module's roots", first, want)
	}
	var got []string
	for rest := pemData; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			t.Errorf("CA bundle: a %s block", b.Type)
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			t.Errorf("CA bundle: certificate %d: %v", len(got), err)
		}
		got = append(got, fmt.Sprintf("%x", sha256.Sum256(b.Bytes)))
	}
	// The roots themselves, not only the header: the pinned module's, as
	// tools/image lists them (a bundle of the build machine's roots under
	// that header would pass the line above).
	cmd := exec.Command("go", "run", ".", "-print-ca") // go test puts its go first in PATH
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "tools", "image")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tools/image -print-ca: %v %s", err, stderrOf(err))
	}
	want := strings.Fields(string(out))
	if len(want) <= 100 || !slices.Equal(got, want) {
		t.Errorf("CA bundle: %d roots, want the %d unconstrained roots of %s %s in its order (tools/image -print-ca)", len(got), len(want), module, m[1])
	}
}

// TestImageIsChartDefault: the chart's Deployment, rendered with its defaults, runs exactly
// the image make image tagged (what docker/podman load names it), so that make image, a
// push and helm install agree without --set image.tag.
func TestImageIsChartDefault(t *testing.T) {
	img := readImage(t, imageLayout(t))
	cmd := exec.Command(testenv.HelmBinary(t), "template", "prom-tenant", filepath.Join(testenv.RepoRoot(), "deploy", "helm", "prom-tenant"),
		"--namespace", "prom-tenant", "--show-only", "templates/deployment.yaml")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v: %s", err, stderr.Bytes())
	}
	var dep appsv1.Deployment
	if err := yaml.Unmarshal(out, &dep); err != nil {
		t.Fatal(err)
	}
	cs := dep.Spec.Template.Spec.Containers
	if len(cs) == 0 {
		t.Fatalf("the chart's Deployment has no container:\n%s", out)
	}
	if cs[0].Image != img.name {
		t.Errorf("the chart's default image %q, make image tagged %q", cs[0].Image, img.name)
	}
	tr, err := os.Open(filepath.Join(testenv.RepoRoot(), "bin", "prom-tenant-image.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tags := archiveTags(t, tr)
	if !slices.Equal(tags, []string{img.name}) {
		t.Errorf("bin/prom-tenant-image.tar tags %q, want [%q]", tags, img.name)
	}
}

// archiveTags reads the RepoTags of a docker-archive's manifest.json: the names docker
// and podman load give the image.
func archiveTags(t *testing.T, r io.Reader) []string {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("docker-archive without manifest.json: %v", err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var m []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&m); err != nil || len(m) != 1 {
			t.Fatalf("docker-archive manifest.json: %v (%d images)", err, len(m))
		}
		return m[0].RepoTags
	}
}

// nonStandardModules runs `caddy list-modules --skip-standard`: the module IDs before the
// blank line and the count.
func nonStandardModules(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command(bin, "list-modules", "--skip-standard").Output()
	if err != nil {
		t.Fatalf("%s list-modules: %v", bin, err)
	}
	var ids []string
	for l := range strings.Lines(string(out)) {
		l = strings.TrimSpace(l)
		if l == "" {
			break
		}
		ids = append(ids, l)
	}
	return ids
}

// TestImageReproducible: make image again, into another directory, gives the same
// manifest digest (every timestamp is the commit's; the Go build is reproducible).
func TestImageReproducible(t *testing.T) {
	first := readImage(t, imageLayout(t))
	dir := t.TempDir()
	// -o build: bin/caddy is not rebuilt under the other tests running it.
	cmd := exec.Command("make", "--no-print-directory", "-s", "-o", "build", "image", "IMAGE_DIR="+dir)
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	second := readImage(t, filepath.Join(dir, "image"))
	if first.digest != second.digest {
		t.Errorf("two builds of the same tree: manifest %s, then %s (bin/image may be stale: run make image)", first.digest, second.digest)
		for i := range min(len(first.manifest.Layers), len(second.manifest.Layers)) {
			if first.manifest.Layers[i].Digest != second.manifest.Layers[i].Digest {
				t.Errorf("layer %d differs", i)
			}
		}
	}
}

package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// EnvKubeAPIServer is the path of the kube-apiserver binary (make test sets it to what
// scripts/build-kube-apiserver.sh built). Without it, kube-apiserver is looked up in PATH.
const EnvKubeAPIServer = "PROM_TENANT_KUBE_APISERVER"

// KubeAPIServer is a real kube-apiserver on 127.0.0.1 backed by its own etcd. Nothing
// else of a cluster runs: no controller-manager, so namespaces get no "default"
// ServiceAccount, deleted namespaces stay Terminating, nothing garbage-collects, and
// EndpointSlices are exactly what tests write.
type KubeAPIServer struct {
	URL        string // https://127.0.0.1:<port>
	Kubeconfig string // kubeconfig file for the admin (context "testenv")
	CAFile     string // PEM CA that signed the serving certificate
	AdminToken string // bearer token of user "admin" in group system:masters
	EtcdURL    string // http://127.0.0.1:<port>
	Dir        string // certificates, keys, etcd data, logs

	args   []string     // kube-apiserver's command line, reused by Restart
	http   *http.Client // trusts CAFile, for readiness checks
	mu     sync.Mutex   // guards proc and starts
	proc   *process     // kube-apiserver
	etcd   *process
	starts int // numbers the log files, one per start
}

// KubeAPIServerBinary is the kube-apiserver to run: $PROM_TENANT_KUBE_APISERVER, else
// kube-apiserver from PATH ("" if neither).
func KubeAPIServerBinary() string {
	if b := os.Getenv(EnvKubeAPIServer); b != "" {
		return b
	}
	b, _ := exec.LookPath("kube-apiserver")
	return b
}

// requireKube is RequireE2E plus etcd and kube-apiserver.
func requireKube(t testing.TB) {
	t.Helper()
	RequireE2E(t)
	var missing []string
	if _, err := exec.LookPath("etcd"); err != nil {
		missing = append(missing, "etcd (run scripts/install-deps.sh)")
	}
	if b := KubeAPIServerBinary(); b == "" {
		missing = append(missing, "kube-apiserver (run scripts/build-kube-apiserver.sh and set "+EnvKubeAPIServer+" to the path it prints)")
	} else if fi, err := os.Stat(b); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		missing = append(missing, b+" (run scripts/build-kube-apiserver.sh)")
	}
	if len(missing) > 0 {
		t.Fatalf("%s=1 but missing: %s", EnvE2E, strings.Join(missing, ", "))
	}
}

// StartKubeAPIServer starts etcd and kube-apiserver, waits until /readyz answers 200,
// and stops both when t ends. It takes several seconds: share one with
// SharedKubeAPIServer unless the test restarts it or needs a clean slate.
func StartKubeAPIServer(t testing.TB) *KubeAPIServer {
	t.Helper()
	requireKube(t)
	k, err := startKube(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		k.stop()
		if t.Failed() {
			t.Log(k.tails())
		}
	})
	return k
}

var sharedKube struct {
	once sync.Once
	kube *KubeAPIServer
	dir  string
	err  error
}

// SharedKubeAPIServer returns one API server for the whole test binary, started by the
// first caller and stopped by testenv.Run. Tests share its objects: use names of their
// own (a namespace per test) and do not Restart it while others may be running.
func SharedKubeAPIServer(t testing.TB) *KubeAPIServer {
	t.Helper()
	requireKube(t)
	sharedKube.once.Do(func() {
		sharedKube.dir, sharedKube.err = os.MkdirTemp("", "testenv-kube-")
		if sharedKube.err == nil {
			sharedKube.kube, sharedKube.err = startKube(sharedKube.dir)
		}
	})
	if sharedKube.err != nil {
		t.Fatal(sharedKube.err)
	}
	k := sharedKube.kube
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(k.tails())
		}
	})
	return k
}

// stopSharedKube is for Run.
func stopSharedKube() {
	if sharedKube.kube != nil {
		sharedKube.kube.stop()
	}
	if sharedKube.dir != "" {
		os.RemoveAll(sharedKube.dir)
	}
}

// RESTConfig is a client-go configuration for the admin. Each call returns a new copy.
func (k *KubeAPIServer) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            k.URL,
		BearerToken:     k.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAFile: k.CAFile},
		// client-go's defaults (5 QPS, burst 10) throttle tests that create many objects.
		QPS:   1000,
		Burst: 1000,
	}
}

// Stop stops the API server and keeps etcd, for tests of an outage; Restart brings it
// back.
func (k *KubeAPIServer) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.proc.stop()
}

// Restart stops the API server if it runs (SIGTERM: a graceful shutdown, as in a
// rolling update) and starts it again on the same address, with the same etcd, keys and
// tokens, so existing clients and issued ServiceAccount tokens keep working once it is
// ready. It returns when /readyz answers 200 again.
func (k *KubeAPIServer) Restart(t testing.TB) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.proc.stop()
	if err := k.startAPIServer(); err != nil {
		t.Fatal(err)
	}
}

// LogPath is the log of the API server that runs now (each start writes a new one).
func (k *KubeAPIServer) LogPath() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.proc.log
}

func (k *KubeAPIServer) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.proc != nil {
		k.proc.stop()
	}
	k.etcd.stop()
}

func (k *KubeAPIServer) tails() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := fmt.Sprintf("last lines of the etcd log %s:\n%s", k.etcd.log, k.etcd.tail(20))
	if k.proc != nil {
		s += fmt.Sprintf("\nlast lines of the kube-apiserver log %s:\n%s", k.proc.log, k.proc.tail(60))
	}
	return s
}

func startKube(dir string) (*KubeAPIServer, error) {
	k := &KubeAPIServer{Dir: dir}
	if err := k.writeCredentials(); err != nil {
		return nil, err
	}
	if err := k.startEtcd(); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err == nil {
		k.URL = "https://127.0.0.1:" + strconv.Itoa(port)
		k.args = k.apiServerArgs(port)
		err = k.startAPIServer()
	}
	if err == nil {
		err = k.writeKubeconfig()
	}
	if err != nil {
		k.stop()
		return nil, err
	}
	return k, nil
}

func (k *KubeAPIServer) startEtcd() error {
	client, err := freePort()
	if err != nil {
		return err
	}
	peer, err := freePort()
	if err != nil {
		return err
	}
	k.EtcdURL = "http://127.0.0.1:" + strconv.Itoa(client)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
	k.etcd, err = startProcess("etcd", filepath.Join(k.Dir, "etcd.log"), k.Dir, nil, "etcd",
		"--name=testenv",
		"--data-dir="+filepath.Join(k.Dir, "etcd"),
		"--listen-client-urls="+k.EtcdURL,
		"--advertise-client-urls="+k.EtcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=testenv="+peerURL,
		"--logger=zap", // 3.4's default (capnslog) is deprecated and warns about it
	)
	if err != nil {
		return err
	}
	err = k.etcd.waitUntil(30*time.Second, func() error {
		b, err := get(context.Background(), k.EtcdURL+"/health")
		if err == nil && !strings.Contains(string(b), `"health":"true"`) {
			err = fmt.Errorf("etcd /health: %s", b)
		}
		return err
	})
	if err != nil {
		k.etcd.stop()
		return fmt.Errorf("%w; last lines of %s:\n%s", err, k.etcd.log, k.etcd.tail(40))
	}
	return nil
}

// apiServerArgs is the smallest command line that serves everything issue 4's tests use
// (RBAC, TokenRequest/TokenReview, SubjectAccessReview, CRDs, EndpointSlices) on loopback.
func (k *KubeAPIServer) apiServerArgs(port int) []string {
	f := func(name string) string { return filepath.Join(k.Dir, name) }
	const issuer = "https://kubernetes.default.svc.cluster.local"
	return []string{
		"--etcd-servers=" + k.EtcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		// Without it the server advertises an address from the default route (and fails
		// to start on a machine without one); loopback would then be rejected by the
		// endpoint reconciler, which only maintains default/kubernetes, which no test uses.
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + f("certs"), // unused with --tls-cert-file, but the default is /var/run/kubernetes
		"--tls-cert-file=" + f("serving.crt"),
		"--tls-private-key-file=" + f("serving.key"),
		"--client-ca-file=" + k.CAFile,
		"--token-auth-file=" + f("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=" + issuer,
		"--api-audiences=" + issuer,
		"--service-account-key-file=" + f("sa.key"), // the public half is taken from the private key
		"--service-account-signing-key-file=" + f("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--profiling=false",
	}
}

func (k *KubeAPIServer) startAPIServer() error {
	k.starts++
	name := "kube-apiserver.log"
	if k.starts > 1 {
		name = fmt.Sprintf("kube-apiserver-%d.log", k.starts)
	}
	var err error
	k.proc, err = startProcess("kube-apiserver", filepath.Join(k.Dir, name), k.Dir, nil, KubeAPIServerBinary(), k.args...)
	if err != nil {
		return err
	}
	// /readyz turns 200 only after etcd answers and every post-start hook has run (RBAC
	// bootstrap roles among them), so an admin request right after succeeds. The first
	// start creates all built-in objects in etcd: about 10s on 2 cores.
	err = k.proc.waitUntil(120*time.Second, func() error {
		req, err := http.NewRequest(http.MethodGet, k.URL+"/readyz", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+k.AdminToken)
		resp, err := k.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s: %s", resp.Status, body)
		}
		return nil
	})
	if err != nil {
		k.proc.stop()
		return fmt.Errorf("%w; last lines of %s:\n%s", err, k.proc.log, k.proc.tail(40))
	}
	return nil
}

// writeCredentials generates in k.Dir a CA and a serving certificate for
// 127.0.0.1/localhost (ca.crt, serving.crt, serving.key), the ServiceAccount token
// signing key (sa.key), and the static token file with the admin (tokens.csv).
func (k *KubeAPIServer) writeCredentials() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "testenv kube CA"},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	servingKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	servingDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}, ca, &servingKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // tokens are signed ES256
	if err != nil {
		return err
	}
	token := make([]byte, 16)
	rand.Read(token)
	k.AdminToken = hex.EncodeToString(token)
	k.CAFile = filepath.Join(k.Dir, "ca.crt")

	files := []struct {
		name string
		data []byte
	}{
		{"ca.crt", pemBlock("CERTIFICATE", caDER)},
		{"serving.crt", pemBlock("CERTIFICATE", servingDER)},
		{"serving.key", ecKeyPEM(servingKey)},
		{"sa.key", ecKeyPEM(saKey)},
		// token,user,uid,"group,..."
		{"tokens.csv", []byte(k.AdminToken + `,admin,admin,"system:masters"` + "\n")},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(k.Dir, f.name), f.data, 0o600); err != nil {
			return err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	k.http = &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	return nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func ecKeyPEM(key *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		panic(err) // only fails for curves x509 does not know
	}
	return pemBlock("EC PRIVATE KEY", der)
}

// writeKubeconfig writes the admin kubeconfig, for tools (kubectl, caddy's kubernetes
// source) that take a file rather than a rest.Config.
func (k *KubeAPIServer) writeKubeconfig() error {
	k.Kubeconfig = filepath.Join(k.Dir, "kubeconfig")
	// %q output is valid YAML for these values (paths, a URL, a hex token).
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: %q
    certificate-authority: %q
users:
- name: admin
  user:
    token: %q
contexts:
- name: testenv
  context:
    cluster: testenv
    user: admin
current-context: testenv
`, k.URL, k.CAFile, k.AdminToken)
	return os.WriteFile(k.Kubeconfig, []byte(cfg), 0o600)
}

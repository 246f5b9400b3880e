package remotewrite

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	config_util "github.com/prometheus/common/config"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// secretTTL is how long a password read from a Secret is reused: rotation
// takes effect within it, and the API server sees at most one read per
// Secret per TTL however fast batches go.
const secretTTL = 30 * time.Second

// kubeSecrets reads passwords from Kubernetes Secrets, as Prometheus's
// HTTP client configuration's secret manager.
type kubeSecrets struct {
	client kubernetes.Interface

	mu    sync.Mutex
	cache map[string]cachedSecret // by namespace/name/key
}

type cachedSecret struct {
	value   string
	fetched time.Time
}

func newKubeSecrets(client kubernetes.Interface) *kubeSecrets {
	return &kubeSecrets{client: client, cache: map[string]cachedSecret{}}
}

// Fetch reads a "namespace/name/key" reference, which clientConfig builds
// with the object's own namespace (none of the three can hold a slash).
func (k *kubeSecrets) Fetch(ctx context.Context, id string) (string, error) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 {
		return "", fmt.Errorf("secret reference %q is not namespace/name/key", id)
	}
	namespace, name, key := parts[0], parts[1], parts[2]
	k.mu.Lock()
	c, ok := k.cache[id]
	k.mu.Unlock()
	if ok && time.Since(c.fetched) < secretTTL {
		return c.value, nil
	}
	s, err := k.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("password secret %s/%s: %w", namespace, name, err)
	}
	v, ok := s.Data[key]
	if !ok {
		return "", fmt.Errorf("password secret %s/%s has no key %q", namespace, name, key)
	}
	k.mu.Lock()
	k.cache[id] = cachedSecret{value: string(v), fetched: time.Now()}
	k.mu.Unlock()
	return string(v), nil
}

// Interface guard.
var _ config_util.SecretManager = (*kubeSecrets)(nil)

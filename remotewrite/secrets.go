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

// kubeSecrets reads passwords from Kubernetes Secrets. Each tenant gets a
// view bound to its own namespace.
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

// inNamespace is the secret manager of one namespace; references are
// "name/key".
func (k *kubeSecrets) inNamespace(namespace string) config_util.SecretManager {
	return namespaceSecrets{k: k, namespace: namespace}
}

type namespaceSecrets struct {
	k         *kubeSecrets
	namespace string
}

func (n namespaceSecrets) Fetch(ctx context.Context, ref string) (string, error) {
	name, key, ok := strings.Cut(ref, "/")
	if !ok {
		return "", fmt.Errorf("secret reference %q is not name/key", ref)
	}
	return n.k.fetch(ctx, n.namespace, name, key)
}

func (k *kubeSecrets) fetch(ctx context.Context, namespace, name, key string) (string, error) {
	id := namespace + "/" + name + "/" + key
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

package promtenant

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// shippedValues are the values files in the repository: the chart's
// defaults, the tests' ci/*.yaml and the templates in examples/helm/.
func shippedValues(t *testing.T) []string {
	t.Helper()
	examples, _ := filepath.Glob("examples/helm/*.yaml")
	if len(examples) == 0 {
		t.Fatal("no examples/helm/*.yaml")
	}
	return append(append(chartValues(t)[1:], filepath.Join(chartDir, "values.yaml")), examples...)
}

// TestShippedValuesHaveNoKnownPassword: no shipped values file holds a
// bcrypt hash together with its password (a copied example would install a
// proxy anyone can log into): no `hash-password --plaintext` recipe, and no
// hash of the passwords the chart's examples once published.
func TestShippedValuesHaveNoKnownPassword(t *testing.T) {
	hash := regexp.MustCompile(`\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}`)
	for _, f := range shippedValues(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), "--plaintext") {
			t.Errorf("%s writes a password next to its hash (--plaintext)", f)
		}
		for _, h := range hash.FindAllString(string(raw), -1) {
			for _, pw := range []string{"team-a-secret", "team-b-secret"} {
				if bcrypt.CompareHashAndPassword([]byte(h), []byte(pw)) == nil {
					t.Errorf("%s: %s is the hash of the published password %q", f, h, pw)
				}
			}
		}
	}
}

// TestChartExamplesNeedOwnPasswords: examples/helm/*.yaml, the templates
// README points at, do not install as copied: the schema refuses their
// placeholders, and with a hash in each place they render.
func TestChartExamplesNeedOwnPasswords(t *testing.T) {
	examples, _ := filepath.Glob("examples/helm/*.yaml")
	for _, f := range examples {
		_, err := helm(t, templateArgs(f)...)
		if err == nil || !strings.Contains(err.Error(), "don't meet the specifications of the schema") || !strings.Contains(err.Error(), "/auth/basic/users/") {
			t.Errorf("helm template -f %s: %v, want the schema to refuse its placeholder hashes", f, err)
		}
		own := "$2a$14$5JFKrLXk71yNoxVuoI5rH.pdcBE8rAESfpTPLwJRtnsYFV291RkIW"
		renderChart(t, f, "auth.basic.users.team-a="+own, "auth.basic.users.team-b="+own)
	}
}

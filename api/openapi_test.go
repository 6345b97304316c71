package api_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestOpenAPIMatchesRoutes: every operation docs/openapi.yaml lists is served (not an
// unknown path, not a wrong method), and every path the API serves is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q, want 3.1", doc.OpenAPI)
	}
	e := newEnv(t, boltStore(t), exampleTree(t, "four-level.yaml"))
	var documented []string
	for path, ops := range doc.Paths {
		documented = append(documented, path)
		for method := range ops {
			if method == "parameters" {
				continue
			}
			m := strings.ToUpper(method)
			r := e.do(m, strings.ReplaceAll(path, "{id}", "x"), adminToken(t), nil)
			if r.status == 405 || (r.status == 404 && strings.Contains(string(r.body), "no such API path")) {
				t.Errorf("%s %s is documented but not served: %d %s", m, path, r.status, r.body)
			}
		}
	}
	served := []string{"/api/v1/me", "/api/v1/sites", "/api/v1/sites/{id}", "/api/v1/endpoints", "/api/v1/endpoints/{id}",
		"/api/v1/endpoints/{id}/device-token", "/api/v1/endpoints/{id}/next", "/api/v1/endpoints/{id}/join-token",
		"/api/v1/meetings", "/api/v1/meetings/{id}", "/api/v1/meetings/{id}/cancel", "/api/v1/meetings/{id}/end",
		"/api/v1/meetings/{id}/rollcall", "/api/v1/audit"}
	for _, p := range served {
		if !slices.Contains(documented, p) {
			t.Errorf("%s is served but not in docs/openapi.yaml", p)
		}
	}
	if len(documented) != len(served) {
		t.Errorf("%d documented paths, %d served", len(documented), len(served))
	}
}

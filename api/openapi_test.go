package api_test

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cau-project/cau/api"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/monitor"
)

// TestOpenAPIMatchesRoutes: docs/openapi.yaml documents exactly the operations the REST
// surface registers, the API's and the monitor console's; and every documented API
// operation is really served (not an unknown path, not a wrong method).
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
	e := fourLevelEnv(t)
	var documented []httpapi.Route
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			m := strings.ToUpper(method)
			documented = append(documented, httpapi.Route{Method: m, Path: path})
			if strings.HasPrefix(path, monitor.APIPrefix) {
				continue // served by the monitor, not by this API: checked against its routes below
			}
			r := e.do(m, strings.ReplaceAll(path, "{id}", "x"), adminToken(t), nil)
			if r.status == http.StatusMethodNotAllowed || (r.status == http.StatusNotFound && strings.Contains(string(r.body), "no such API path")) {
				t.Errorf("%s %s is documented but not served: %d %s", m, path, r.status, r.body)
			}
		}
	}
	registered := append(api.New(api.Config{}).Routes(), monitor.Routes()...)
	if len(registered) < 20 {
		t.Fatalf("only %d routes registered: %v", len(registered), registered)
	}
	for _, rt := range registered {
		if !slices.Contains(documented, rt) {
			t.Errorf("%s %s is registered but not in docs/openapi.yaml", rt.Method, rt.Path)
		}
	}
	for _, rt := range documented {
		if !slices.Contains(registered, rt) {
			t.Errorf("%s %s is in docs/openapi.yaml but not registered", rt.Method, rt.Path)
		}
	}
}

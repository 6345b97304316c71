package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/cau-project/cau/"

// goList runs `go list` with args and returns the import paths it prints, one a line.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the import graph: %v", err)
	}
	out, err := exec.Command(gobin, append([]string{"list"}, args...)...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	return strings.Fields(string(out))
}

// TestImportRules: the seams of issue 9 stay cut. monitor reads links in its own types,
// never signaling's; the load tester speaks only the public surface (apiclient for join
// tokens, client for media), so it cannot reach the store or the signing key; signaling
// drives bridges through protocol types and never touches pion or the media engine itself.
func TestImportRules(t *testing.T) {
	for _, r := range []struct {
		pkg       string
		deps      bool // the whole import graph below pkg, not only its own imports
		forbidden []string
		why       string
	}{
		{"monitor", true, []string{module + "signaling"}, "monitor grades links in its own types"},
		{"loadtest", true, []string{module + "rooms", module + "auth"},
			"the load tester speaks only the public API and protocol"},
		{"signaling", false, []string{"github.com/pion/", module + "sfu"},
			"signaling drives bridges in protocol types; the bridge package owns pion"},
	} {
		args := []string{"-f", "{{join .Imports \"\\n\"}}", module + r.pkg}
		if r.deps {
			args = []string{"-deps", module + r.pkg}
		}
		for _, imp := range goList(t, args...) {
			for _, bad := range r.forbidden {
				if imp == bad || (strings.HasSuffix(bad, "/") && strings.HasPrefix(imp, bad)) {
					t.Errorf("%s imports %s: %s (docs/design.md, package map)", r.pkg, imp, r.why)
				}
			}
		}
	}
}

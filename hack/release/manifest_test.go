package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func readTemplate(t *testing.T, plugin string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "krew-manifests", plugin+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRenderCommittedManifests(t *testing.T) {
	arts := fakeArtifacts()
	for _, base := range []string{strings.ReplaceAll(DefaultBaseURL, "{{version}}", testVersion), "http://127.0.0.1:8080/x"} {
		for _, pl := range Plugins {
			t.Run(pl+" "+base, func(t *testing.T) {
				b, err := Render(pl+".yaml", readTemplate(t, pl), testVersion, base, sums(arts))
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), "{{") || strings.Contains(string(b), "TagName") {
					t.Fatalf("placeholders left:\n%s", b)
				}
				if err := CheckManifest(pl+".yaml", b, testVersion, base, arts); err != nil {
					t.Fatal(err)
				}
				var m Manifest
				if err := yaml.Unmarshal(b, &m); err != nil {
					t.Fatal(err)
				}
				if len(m.Spec.Platforms) != len(AllPlatforms) {
					t.Fatalf("%d platforms, want %d", len(m.Spec.Platforms), len(AllPlatforms))
				}
				for i, p := range m.Spec.Platforms {
					want := AllPlatforms[i]
					file := ArchiveName(pl, testVersion, want)
					if p.URI != base+"/"+file || p.Sha256 != sums(arts)[file] {
						t.Errorf("platform %s: uri %s sha256 %s", want, p.URI, p.Sha256)
					}
					wantBin := "kubectl-" + pl
					if want.OS == "windows" {
						wantBin += ".exe"
					}
					if p.Bin != wantBin {
						t.Errorf("platform %s: bin %q, want %q", want, p.Bin, wantBin)
					}
				}
				// Each says how it differs from the kubectl command it is closest to.
				if kin := map[string]string{"devpatch": "kubectl debug", "devssh": "kubectl exec", "devsync": "kubectl cp"}[pl]; !strings.Contains(m.Spec.Description, `Unlike "`+kin+`"`) {
					t.Errorf("the description does not say how %s differs from %s", pl, kin)
				}
				if pl != "devpatch" && !strings.Contains(m.Spec.Caveats, "kubectl devpatch") {
					t.Errorf("the caveats do not say that the workload needs kubectl devpatch first")
				}
				if pl == "devpatch" && !strings.Contains(m.Spec.Caveats, "ghcr.io/kubectl-dev/devagent:"+testVersion) {
					t.Errorf("devpatch's caveats do not name the agent image of the version:\n%s", m.Spec.Caveats)
				}
			})
		}
	}
}

func TestRenderRefusesWhatTheReleaseLacks(t *testing.T) {
	arts := fakeArtifacts()
	s := sums(arts)
	delete(s, ArchiveName("devssh", testVersion, Platform{"windows", "arm64"}))
	_, err := Render("devssh.yaml", readTemplate(t, "devssh"), testVersion, "http://x", s)
	if err == nil || !strings.Contains(err.Error(), "no archive kubectl-devssh_v1.2.3_windows_arm64.zip") {
		t.Fatalf("err = %v", err)
	}
	bad := []byte(`{{addURIAndSha "https://example.com/{{ .TagName }}/kubectl-devssh_{{ .TagName }}_linux_amd64.tar.gz" .TagName }}`)
	if _, err := Render("devssh.yaml", bad, testVersion, "http://x", sums(arts)); err == nil || !strings.Contains(err.Error(), "is not under") {
		t.Fatalf("a template URL outside the GitHub release: err = %v", err)
	}
}

func TestCheckManifestCatches(t *testing.T) {
	arts := fakeArtifacts()
	base := "http://h"
	good, err := Render("devsync.yaml", readTemplate(t, "devsync"), testVersion, base, sums(arts))
	if err != nil {
		t.Fatal(err)
	}
	wrongSum := sums(arts)[ArchiveName("devsync", testVersion, Platform{"linux", "arm64"})]
	for name, c := range map[string]struct{ old, new, want string }{
		"no .exe":       {"bin: kubectl-devsync.exe", "bin: kubectl-devsync", `bin "kubectl-devsync", want "kubectl-devsync.exe"`},
		"wrong sha256":  {sums(arts)[ArchiveName("devsync", testVersion, Platform{"linux", "amd64"})], wrongSum, "sha256"},
		"long short":    {"shortDescription: ", "shortDescription: this is far too long for krew's fifty character limit ", "1 to 50 characters"},
		"other version": {"version: " + testVersion, "version: v9.9.9", "spec.version"},
		"wrong name":    {"name: devsync", "name: sync", "is not the file name"},
	} {
		t.Run(name, func(t *testing.T) {
			b := bytes.Replace(good, []byte(c.old), []byte(c.new), 1)
			if bytes.Equal(b, good) {
				t.Fatalf("%q not found in the manifest", c.old)
			}
			err := CheckManifest("devsync.yaml", b, testVersion, base, arts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestRenderDropsTheTemplateComment(t *testing.T) {
	b, err := Render("devpatch.yaml", readTemplate(t, "devpatch"), testVersion, "http://h", sums(fakeArtifacts()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("apiVersion: krew.googlecontainertools.github.com/v1alpha2\n")) {
		t.Fatalf("rendered manifest starts with %q", b[:min(len(b), 80)])
	}
}

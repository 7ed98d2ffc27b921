package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const testVersion = "v1.2.3"

// fakeArtifacts stands for a release's archives, with made-up checksums.
func fakeArtifacts() []Artifact {
	var arts []Artifact
	for _, pl := range Plugins {
		for _, p := range AllPlatforms {
			file := ArchiveName(pl, testVersion, p)
			sum := sha256.Sum256([]byte(file))
			arts = append(arts, Artifact{Plugin: pl, Platform: p, File: file, Sha256: hex.EncodeToString(sum[:])})
		}
	}
	return arts
}

func sums(arts []Artifact) map[string]string {
	m := map[string]string{}
	for _, a := range arts {
		m[a.File] = a.Sha256
	}
	return m
}

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

func TestArchiveContents(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl-devpatch.exe")
	payload := []byte("\x7fELF not really")
	if err := os.WriteFile(bin, payload, 0o755); err != nil {
		t.Fatal(err)
	}
	license := []byte("Apache License\n")
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []Platform{{"linux", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}} {
		t.Run(p.String(), func(t *testing.T) {
			b := Binary{Plugin: "devpatch", Platform: p, Path: bin}
			out := t.TempDir()
			a, err := WriteArchive(out, b, testVersion, license, mtime)
			if err != nil {
				t.Fatal(err)
			}
			wantFile := fmt.Sprintf("kubectl-devpatch_%s_%s_%s%s", testVersion, p.OS, p.Arch, p.ArchiveExt())
			if a.File != wantFile || filepath.Base(a.Path) != wantFile {
				t.Fatalf("archive %s, want %s", a.File, wantFile)
			}
			data, err := os.ReadFile(a.Path)
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != a.Sha256 || int64(len(data)) != a.Size {
				t.Fatalf("sha256/size of %s do not match the file", a.File)
			}
			entries, err := ReadArchive(a.Path)
			if err != nil {
				t.Fatal(err)
			}
			exe := "kubectl-devpatch" + p.Exe()
			if len(entries) != 2 {
				t.Fatalf("entries %v, want LICENSE and %s", keys(entries), exe)
			}
			if e := entries[exe]; !bytes.Equal(e.Data, payload) || e.Mode != 0o755 {
				t.Errorf("%s: mode %o, %d bytes", exe, e.Mode, len(e.Data))
			}
			if e := entries["LICENSE"]; !bytes.Equal(e.Data, license) || e.Mode != 0o644 {
				t.Errorf("LICENSE: mode %o, %q", e.Mode, e.Data)
			}
			// The same inputs give the same bytes.
			again, err := WriteArchive(t.TempDir(), b, testVersion, license, mtime)
			if err != nil {
				t.Fatal(err)
			}
			if again.Sha256 != a.Sha256 {
				t.Errorf("the archive is not reproducible: %s then %s", a.Sha256, again.Sha256)
			}
		})
	}
}

func keys(m map[string]archiveEntry) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	return s
}

func TestChecksums(t *testing.T) {
	arts := fakeArtifacts()
	path := filepath.Join(t.TempDir(), "checksums.txt")
	if err := WriteChecksums(path, arts); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(Plugins)*len(AllPlatforms) {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines {
		sum, file, ok := strings.Cut(l, "  ")
		if !ok || !sha256RE.MatchString(sum) || sums(arts)[file] != sum {
			t.Errorf("line %q", l)
		}
		if i > 0 && strings.SplitN(lines[i-1], "  ", 2)[1] > file {
			t.Errorf("not sorted at %q", l)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, v := range []string{"v0.1.0", "v1.2.3-rc.1", "v0.0.0-dev"} {
		if !semverRE.MatchString(v) {
			t.Errorf("%s refused", v)
		}
	}
	for _, v := range []string{"0.1.0", "v1.2", "v01.2.3", "latest"} {
		if semverRE.MatchString(v) {
			t.Errorf("%s accepted", v)
		}
	}
	ps, err := ParsePlatforms("linux/amd64,windows/arm64")
	if err != nil || len(ps) != 2 || ps[1].Exe() != ".exe" || ps[1].ArchiveExt() != ".zip" {
		t.Fatalf("%v %v", ps, err)
	}
	if _, err := ParsePlatforms("linux/386"); err == nil {
		t.Fatal("linux/386 accepted")
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

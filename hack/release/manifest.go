package main

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"
)

// The manifest templates in krew-manifests/ use krew-release-bot's syntax, so
// that the bot can bump versions from the same files:
//
//	version: {{ .TagName }}
//	{{addURIAndSha "https://github.com/.../download/{{ .TagName }}/kubectl-devpatch_{{ .TagName }}_linux_amd64.tar.gz" .TagName }}
//
// Render fills them from a local build: the uri is --base-url plus the
// archive's file name, the sha256 that of the archive just written.

type templateData struct{ TagName, Version string }

// Render renders one manifest template. sums maps archive file names to
// their sha256; baseURL is where the archives are served (no trailing /).
func Render(name string, tmpl []byte, version, baseURL string, sums map[string]string) ([]byte, error) {
	githubBase := strings.ReplaceAll(DefaultBaseURL, "{{version}}", version)
	funcs := template.FuncMap{
		"addURIAndSha": func(url, tag string) (string, error) {
			t, err := template.New("url").Option("missingkey=error").Parse(url)
			if err != nil {
				return "", err
			}
			var b strings.Builder
			if err := t.Execute(&b, templateData{TagName: tag, Version: tag}); err != nil {
				return "", err
			}
			u := b.String()
			file := path.Base(u)
			if dir := strings.TrimSuffix(u, "/"+file); dir != githubBase {
				return "", fmt.Errorf("%s: archive URL %s is not under the release's %s", name, u, githubBase)
			}
			sum, ok := sums[file]
			if !ok {
				return "", fmt.Errorf("%s: the release has no archive %s", name, file)
			}
			return fmt.Sprintf("uri: %s/%s\n    sha256: %s", baseURL, file, sum), nil
		},
	}
	t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(string(tmpl))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := t.Execute(&out, templateData{TagName: version, Version: version}); err != nil {
		return nil, err
	}
	// The template's leading comment is about the template; krew-index
	// gets the manifest without it.
	b := out.Bytes()
	for bytes.HasPrefix(b, []byte("#")) {
		_, b, _ = bytes.Cut(b, []byte("\n"))
	}
	return b, nil
}

// RenderAll renders every plugin's template of dir into outDir and checks
// each result (CheckManifest).
func RenderAll(dir, outDir, version, baseURL string, arts []Artifact) error {
	sums := map[string]string{}
	for _, a := range arts {
		sums[a.File] = a.Sha256
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	for _, p := range Plugins {
		file := p + ".yaml"
		tmpl, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		b, err := Render(file, tmpl, version, baseURL, sums)
		if err != nil {
			return err
		}
		if err := CheckManifest(file, b, version, baseURL, arts); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(outDir, file), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Manifest is the part of krew's Plugin (sigs.k8s.io/krew/pkg/index) that
// the checks read.
type Manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats"`
		Platforms        []struct {
			URI      string `json:"uri"`
			Sha256   string `json:"sha256"`
			Bin      string `json:"bin"`
			Selector struct {
				MatchLabels      map[string]string `json:"matchLabels"`
				MatchExpressions []any             `json:"matchExpressions"`
			} `json:"selector"`
			Files []any `json:"files"`
		} `json:"platforms"`
	} `json:"spec"`
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// CheckManifest checks a rendered manifest against the release: krew's own
// rules that matter here (name = file name, semver, shortDescription, one
// os/arch selector per platform) and ours (every platform of the release
// exactly once, its archive's uri and sha256, bin with .exe on windows,
// description lines of at most 80 columns).
func CheckManifest(file string, b []byte, version, baseURL string, arts []Artifact) error {
	var m Manifest
	if err := yaml.UnmarshalStrict(b, &m); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	name := strings.TrimSuffix(file, ".yaml")
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" {
		fail("apiVersion/kind are %s/%s", m.APIVersion, m.Kind)
	}
	if m.Metadata.Name != name {
		fail("metadata.name %q is not the file name %q", m.Metadata.Name, name)
	}
	if m.Spec.Version != version {
		fail("spec.version %q, want %q", m.Spec.Version, version)
	}
	if sd := m.Spec.ShortDescription; sd == "" || len(sd) > 50 || strings.Contains(sd, "\n") {
		fail("shortDescription %q must be one line of 1 to 50 characters", sd)
	}
	for _, l := range strings.Split(m.Spec.Description, "\n") {
		if len(l) > 80 {
			fail("description line longer than 80 columns: %q", l)
		}
	}
	if m.Spec.Homepage == "" || m.Spec.Description == "" {
		fail("homepage and description are required")
	}
	byFile := map[string]Artifact{}
	for _, a := range arts {
		if a.Plugin == name {
			byFile[a.File] = a
		}
	}
	seen := map[string]bool{}
	for i, p := range m.Spec.Platforms {
		labels := p.Selector.MatchLabels
		plat := Platform{labels["os"], labels["arch"]}
		if len(labels) != 2 || plat.OS == "" || plat.Arch == "" || len(p.Selector.MatchExpressions) > 0 {
			fail("platforms[%d]: the selector must match exactly os and arch, got %v", i, labels)
			continue
		}
		if seen[plat.String()] {
			fail("platforms[%d]: %s appears twice", i, plat)
		}
		seen[plat.String()] = true
		want := ArchiveName(name, version, plat)
		a, ok := byFile[want]
		if !ok {
			fail("platforms[%d]: no archive %s in the release", i, want)
			continue
		}
		if p.URI != baseURL+"/"+want {
			fail("platforms[%d] (%s): uri %s, want %s", i, plat, p.URI, baseURL+"/"+want)
		}
		if !sha256RE.MatchString(p.Sha256) || p.Sha256 != a.Sha256 {
			fail("platforms[%d] (%s): sha256 %q, want %s (of %s)", i, plat, p.Sha256, a.Sha256, a.File)
		}
		if wantBin := "kubectl-" + name + plat.Exe(); p.Bin != wantBin {
			fail("platforms[%d] (%s): bin %q, want %q", i, plat, p.Bin, wantBin)
		}
		if len(p.Files) > 0 {
			fail("platforms[%d] (%s): files is set; the default (extract everything) keeps LICENSE", i, plat)
		}
	}
	for _, p := range AllPlatforms {
		if !seen[p.String()] {
			fail("no platform entry for %s", p)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s:\n  %s", file, strings.Join(errs, "\n  "))
	}
	return nil
}

package agentconn

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestHintRoundTripAndValidation(t *testing.T) {
	dir := t.TempDir()
	path := HintFile(dir, "https://127.0.0.1:6443", "ns", "deploy/demo", "")
	if _, ok := LoadHint(path); ok {
		t.Fatal("a hint before any was saved")
	}
	tg := &Target{Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "demo-7d9f-abcde"}}, SecretName: "demo-devagent"}
	SaveHint(path, Hint{}, tg)
	h, ok := LoadHint(path)
	if !ok || h.Pod != "demo-7d9f-abcde" || h.SecretName != "demo-devagent" {
		t.Fatalf("LoadHint = %+v, %v", h, ok)
	}
	if other := HintFile(dir, "https://127.0.0.1:6443", "ns", "deploy/other", ""); other == path {
		t.Error("two references share a hint file")
	}
	for _, bad := range []string{`{"pod":"../../x","secret":"s"}`, `{"pod":"p","secret":""}`, `{"pod":"P Q","secret":"s"}`, `not json`} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if h, ok := LoadHint(path); ok {
			t.Errorf("LoadHint(%s) = %+v, want no hint", bad, h)
		}
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("hints folder: %v %v, want mode 0700", fi.Mode(), err)
	}
}

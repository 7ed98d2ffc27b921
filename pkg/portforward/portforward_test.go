package portforward

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// server refuses every upgrade with status and records the methods used.
func server(t *testing.T, status int) (*rest.Config, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var methods []string
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		methods = append(methods, r.Method)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		reason := "BadRequest"
		if status == http.StatusForbidden {
			reason = "Forbidden"
		}
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"p\" is forbidden: User \"carol\" cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"ns\"","reason":"` + reason + `","code":` + strconv.Itoa(status) + `}`))
	}))
	t.Cleanup(s.Close)
	return &rest.Config{Host: s.URL}, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), methods...)
	}
}

func dial(t *testing.T, cfg *rest.Config) error {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDialer(cfg, URL(cs.CoreV1().RESTClient(), "ns", "p"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(d, Target{Namespace: "ns", Pod: "p", Port: 2222})
	return err
}

// The WebSocket tunnel is tried first (GET); its failed upgrade makes the
// fallback to SPDY (POST) fire: the predicate matches client-go's errors.
func TestFallbackToSPDY(t *testing.T) {
	cfg, methods := server(t, http.StatusBadRequest)
	if err := dial(t, cfg); err == nil {
		t.Fatal("dial succeeded against a server that refuses upgrades")
	}
	if got := strings.Join(methods(), ","); got != "GET,POST" {
		t.Fatalf("requests = %s, want GET (websocket) then POST (SPDY fallback)", got)
	}
}

func TestWebsocketsDisabled(t *testing.T) {
	t.Setenv("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")
	cfg, methods := server(t, http.StatusBadRequest)
	_ = dial(t, cfg)
	if got := strings.Join(methods(), ","); got != "POST" {
		t.Fatalf("requests = %s, want only POST (SPDY)", got)
	}
}

func TestForbiddenNamesThePermission(t *testing.T) {
	cfg, _ := server(t, http.StatusForbidden)
	err := dial(t, cfg)
	var fe *ForbiddenError
	if !errors.As(err, &fe) {
		t.Fatalf("dial = %v, want a ForbiddenError", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `"pods/portforward"`) || strings.Contains(msg, "\n") {
		t.Fatalf("message %q should be one line naming pods/portforward", msg)
	}
}

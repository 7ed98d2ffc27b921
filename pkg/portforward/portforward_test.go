package portforward

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// TestPredial: over TLS, the WebSocket upgrade takes the connection
// dialled in advance (the server sees no other for it), and a refused
// upgrade still reads as client-go's: Forbidden names the permission, a
// 400 falls back to SPDY.
func TestPredial(t *testing.T) {
	for _, status := range []int{http.StatusForbidden, http.StatusBadRequest} {
		var mu sync.Mutex
		var methods []string
		conns := 0
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			methods = append(methods, r.Method)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"p\" is forbidden","reason":"Forbidden","code":` + strconv.Itoa(status) + `}`))
		}))
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				mu.Lock()
				conns++
				mu.Unlock()
			}
		}
		s.StartTLS()
		t.Cleanup(s.Close)
		cfg := &rest.Config{Host: s.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
		pre := StartPredial(cfg)
		if pre == nil {
			t.Fatal("no pre-dial for an https server without a proxy")
		}
		<-pre.done
		mu.Lock()
		before := conns
		mu.Unlock()
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDialerWith(cfg, URL(cs.CoreV1().RESTClient(), "ns", "p"), pre)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Dial(d, Target{Namespace: "ns", Pod: "p", Port: 2222})
		mu.Lock()
		got, after := strings.Join(methods, ","), conns
		mu.Unlock()
		// The WebSocket GET on the pre-dialled connection, the SPDY POST
		// (fallback) on a new one.
		if got != "GET,POST" || before != 1 || after != 2 {
			t.Fatalf("requests %s, connections %d then %d: want GET on the pre-dialled one, then POST", got, before, after)
		}
		var fe *ForbiddenError
		if status == http.StatusForbidden && !errors.As(err, &fe) {
			t.Fatalf("dial = %v, want a ForbiddenError", err)
		}
		if err == nil {
			t.Fatal("dial succeeded against a server that refuses upgrades")
		}
	}
	// No pre-dial through a proxy or without TLS.
	if StartPredial(&rest.Config{Host: "http://127.0.0.1:1"}) != nil {
		t.Error("a pre-dial for plain HTTP")
	}
	proxy := func(*http.Request) (*url.URL, error) { return url.Parse("http://127.0.0.1:3128") }
	if StartPredial(&rest.Config{Host: "https://example.com", Proxy: proxy}) != nil {
		t.Error("a pre-dial through a proxy")
	}
}

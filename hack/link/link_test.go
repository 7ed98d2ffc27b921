package link

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2/toxics"
	"k8s.io/client-go/tools/clientcmd"
)

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
	return time.Since(start)
}

func TestLinkDelaysCutsAndRestores(t *testing.T) {
	p := Profile{Name: "test", Up: Direction{Latency: 20 * time.Millisecond}, Down: Direction{Latency: 20 * time.Millisecond}}
	l, err := Start(p, "127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got, want := strings.Join(l.Toxics(), ","), "latency_downstream,latency_upstream"; got != want {
		t.Errorf("toxics %s, want %s", got, want)
	}
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if rtt := roundTrip(t, c, r); rtt < 40*time.Millisecond {
		t.Errorf("round trip through a 20 ms + 20 ms link took %s", rtt)
	}
	addr := l.Addr()
	l.Cut()
	// The open connection is closed and a new one is refused.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("a connection through a cut link still reads")
	}
	c.Close()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("a cut link accepts connections")
	}
	if err := l.Restore(); err != nil {
		t.Fatal(err)
	}
	c, err = net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatalf("dialling the restored link: %v", err)
	}
	defer c.Close()
	roundTrip(t, c, bufio.NewReader(c))
}

func TestThrottleAndHeal(t *testing.T) {
	l, err := Start(Profile{Name: "none"}, "127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Throttle(100 * 1000); err != nil { // 100 kB/s
		t.Fatal(err)
	}
	if got := len(l.Toxics()); got != 2 {
		t.Fatalf("%d toxics after Throttle, want 2", got)
	}
	checkThrottled(t, l)
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	if got := len(l.Toxics()); got != 0 {
		t.Errorf("%d toxics after Heal, want 0", got)
	}
}

func TestProfiles(t *testing.T) {
	wan, err := Lookup("wan")
	if err != nil {
		t.Fatal(err)
	}
	if wan.OneWay() != 15*time.Millisecond || wan.Up.Rate != 12_500_000 {
		t.Errorf("wan = %+v", wan)
	}
	far, _ := Lookup("far")
	if far.Up.Rate != 2_500_000 || far.Down.Rate != 6_250_000 {
		t.Errorf("far = %+v", far)
	}
	names := map[string]bool{}
	for _, s := range far.toxics() {
		names[s.Name] = true
		if s.Type == "bandwidth" && s.Stream == "upstream" && s.Attributes["rate"] != int64(2500) {
			t.Errorf("far's upstream rate is %v KB/s, want 2500", s.Attributes["rate"])
		}
	}
	if len(names) != 4 {
		t.Errorf("far has toxics %v, want latency and bandwidth each way", names)
	}
	if _, err := Lookup("moon"); err == nil || !strings.Contains(err.Error(), "lan, wan, far") {
		t.Errorf("Lookup(moon) = %v", err)
	}
	if _, err := Start(wan, "0.0.0.0:0", "127.0.0.1:1"); err == nil {
		t.Error("a link listening beyond loopback started")
	}
}

func TestWriteKubeconfig(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "admin")
	if err := os.WriteFile(src, []byte(`apiVersion: v1
kind: Config
clusters:
- name: kdev
  cluster: {server: "https://localhost:6443", certificate-authority-data: "Zm9v"}
contexts:
- name: kdev
  context: {cluster: kdev, user: admin}
current-context: kdev
users:
- name: admin
  user: {token: secret}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	up, err := Upstream(src)
	if err != nil || up != "localhost:6443" {
		t.Fatalf("Upstream = %q, %v", up, err)
	}
	dst := filepath.Join(dir, "link")
	if err := WriteKubeconfig(src, dst, "127.0.0.1:16443"); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Clusters["kdev"]
	if c.Server != "https://127.0.0.1:16443" || c.TLSServerName != "localhost" || string(c.CertificateAuthorityData) != "foo" {
		t.Errorf("cluster through the link = %+v", c)
	}
	if cfg.AuthInfos["admin"].Token != "secret" {
		t.Error("the user's credentials were not kept")
	}
}

// A throttled link with latency holds back what it cannot carry instead of
// queueing it in the latency toxic's buffer: the profile's bandwidth toxic
// comes first in each direction and Throttle changes its rate in place, so
// nothing is ever chained behind the latency toxic.
func TestThrottleKeepsBandwidthAheadOfLatency(t *testing.T) {
	p := Profile{Name: "test",
		Up:   Direction{Latency: 5 * time.Millisecond, Rate: 10_000_000},
		Down: Direction{Latency: 5 * time.Millisecond, Rate: 10_000_000}}
	l, err := Start(p, "127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	order := func() map[string][]string {
		out := map[string][]string{}
		for _, tx := range l.proxy.Toxics.GetToxicArray() {
			w := tx.(*toxics.ToxicWrapper)
			out[w.Stream] = append(out[w.Stream], w.Type)
		}
		return out
	}
	want := "map[downstream:[bandwidth latency] upstream:[bandwidth latency]]"
	if got := fmt.Sprint(order()); got != want {
		t.Fatalf("toxics %s, want %s", got, want)
	}
	rate := func() any {
		return l.proxy.Toxics.GetToxic("bandwidth_upstream").Toxic.(*toxics.BandwidthToxic).Rate
	}
	if err := l.Throttle(100 * 1000); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(order()); got != want {
		t.Errorf("toxics after Throttle %s, want %s", got, want)
	}
	if got := rate(); got != int64(100) {
		t.Errorf("upstream rate after Throttle %v KB/s, want 100", got)
	}
	checkThrottled(t, l)
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	if got := rate(); got != int64(10_000) {
		t.Errorf("upstream rate after Heal %v KB/s, want the profile's 10000", got)
	}
}

// checkThrottled sends 50 kB through l, throttled to 100 kB/s, to an echo
// server: the round trip takes at least 0.4 s (0.5 s each way).
func checkThrottled(t *testing.T, l *Link) {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 50*1000)
	start := time.Now()
	go func() { _, _ = c.Write(payload) }()
	if _, err := io.ReadFull(c, make([]byte, len(payload))); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("50 kB through a 100 kB/s link took %s", d)
	}
}

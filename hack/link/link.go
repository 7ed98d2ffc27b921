// Package link emulates the network between a laptop and a remote cluster on
// this machine: a Toxiproxy proxy on loopback in front of the API server, with
// a latency toxic and a bandwidth toxic in each direction. Every connection of
// a client that uses a kubeconfig written by Kubeconfig (API calls, and the
// exec and port-forward streams of kubectl and the plugins) crosses it; the
// API server's own connection to the kubelet stays local, as it does in a
// cloud region.
//
// Toxiproxy runs in-process (github.com/Shopify/toxiproxy/v2 as a library):
// the e2e tests and the benchmarks start a Link of their own and cut, stall
// or throttle it; `kdev link up` runs one in a background process with
// Toxiproxy's HTTP API on loopback, so that toxiproxy-cli works on it too.
//
// Nothing leaves the machine: the proxy listens on loopback only and forwards
// to a loopback upstream.
package link

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

// Direction is what one direction of the link does to the bytes that cross it.
type Direction struct {
	// Latency is added to every chunk; Jitter is +/- around it (uniform).
	Latency, Jitter time.Duration
	// Rate in bytes per second; 0 is unlimited.
	Rate int64
}

// Profile names a link: Up is laptop to cluster (client to API server),
// Down is cluster to laptop.
type Profile struct {
	Name     string
	Summary  string
	Up, Down Direction
}

// OneWay is the profile's mean one-way delay (laptop to cluster).
func (p Profile) OneWay() time.Duration { return p.Up.Latency }

const mbit = 1000 * 1000 / 8 // bytes per second in 1 Mbit/s

var profiles = []Profile{
	{Name: "lan", Summary: "0.5 ms each way, 1 Gbit/s",
		Up:   Direction{Latency: 500 * time.Microsecond, Rate: 1000 * mbit},
		Down: Direction{Latency: 500 * time.Microsecond, Rate: 1000 * mbit}},
	{Name: "wan", Summary: "15 ms +/- 2 ms each way, 100 Mbit/s",
		Up:   Direction{Latency: 15 * time.Millisecond, Jitter: 2 * time.Millisecond, Rate: 100 * mbit},
		Down: Direction{Latency: 15 * time.Millisecond, Jitter: 2 * time.Millisecond, Rate: 100 * mbit}},
	{Name: "far", Summary: "75 ms +/- 10 ms each way, 20 Mbit/s up, 50 Mbit/s down",
		Up:   Direction{Latency: 75 * time.Millisecond, Jitter: 10 * time.Millisecond, Rate: 20 * mbit},
		Down: Direction{Latency: 75 * time.Millisecond, Jitter: 10 * time.Millisecond, Rate: 50 * mbit}},
}

// Profiles returns every profile, in order of distance.
func Profiles() []Profile { return append([]Profile(nil), profiles...) }

// Lookup returns the profile of that name.
func Lookup(name string) (Profile, error) {
	for _, p := range profiles {
		if p.Name == name {
			return p, nil
		}
	}
	names := make([]string, 0, len(profiles))
	for _, p := range profiles {
		names = append(names, p.Name)
	}
	return Profile{}, fmt.Errorf("unknown link profile %q: choose one of %s", name, strings.Join(names, ", "))
}

// toxicSpec is the JSON Toxiproxy takes for a toxic (its HTTP API's body).
type toxicSpec struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Stream     string         `json:"stream"`
	Toxicity   float32        `json:"toxicity"`
	Attributes map[string]any `json:"attributes"`
}

// toxics returns the profile's toxics: bandwidth, then latency, per direction
// (Toxiproxy's "upstream" is client to server). The order matters: each
// toxic reads from a channel, and the latency toxic's holds 1024 chunks
// (Toxiproxy's buffer for it). Behind the bandwidth toxic, that buffer holds
// what crosses the link in one latency (the link's bandwidth-delay
// product, as on a real path); in front of it, it would swallow up to 32
// MiB that the sender believes sent, which no real link holds, and an
// interrupted sender's data would keep arriving long after it stopped.
func (p Profile) toxics() []toxicSpec {
	var out []toxicSpec
	for _, d := range []struct {
		stream string
		dir    Direction
	}{{"upstream", p.Up}, {"downstream", p.Down}} {
		if d.dir.Rate > 0 {
			out = append(out, bandwidthToxic(d.stream, d.dir.Rate))
		}
		if d.dir.Latency > 0 {
			out = append(out, toxicSpec{Name: "latency_" + d.stream, Type: "latency", Stream: d.stream, Toxicity: 1,
				Attributes: map[string]any{"latency": d.dir.Latency.Milliseconds(), "jitter": d.dir.Jitter.Milliseconds()}})
			if d.dir.Latency < time.Millisecond {
				// Toxiproxy's latency is in whole milliseconds: below one, a
				// bare round of the scheduler is the closest it gets.
				out[len(out)-1].Attributes["latency"] = 0
			}
		}
	}
	return out
}

// bandwidthToxic limits stream to rate bytes per second (Toxiproxy counts
// KB/s).
func bandwidthToxic(stream string, rate int64) toxicSpec {
	return toxicSpec{Name: "bandwidth_" + stream, Type: "bandwidth", Stream: stream, Toxicity: 1,
		Attributes: map[string]any{"rate": max(rate/1000, 1)}}
}

// Link is one running proxy with its profile's toxics.
type Link struct {
	Profile  Profile
	Upstream string

	server    *toxiproxy.ApiServer
	proxy     *toxiproxy.Proxy
	mu        sync.Mutex
	faults    []string // names of fault toxics added on top of the profile
	throttled bool     // Throttle changed the profile's bandwidth toxics
}

// quiet makes Toxiproxy log warnings and errors only (it logs every
// connection at info level through zerolog's global logger).
var quiet sync.Once

// Start runs a proxy on listen (a loopback host:port; port 0 picks one) to
// upstream (a loopback host:port) with the profile's toxics.
func Start(p Profile, listen, upstream string) (*Link, error) {
	for _, a := range []string{listen, upstream} {
		if err := loopback(a); err != nil {
			return nil, err
		}
	}
	quiet.Do(func() { zerolog.SetGlobalLevel(zerolog.WarnLevel) })
	logger := zerolog.Nop()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), logger)
	proxy := toxiproxy.NewProxy(server, "api", listen, upstream)
	if err := server.Collection.Add(proxy, true); err != nil {
		return nil, fmt.Errorf("starting the link proxy on %s: %w", listen, err)
	}
	l := &Link{Profile: p, Upstream: upstream, server: server, proxy: proxy}
	for _, t := range p.toxics() {
		if err := l.addToxic(t); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// Server is the Toxiproxy server the link's proxy belongs to (to serve its
// HTTP API: `kdev link serve`).
func (l *Link) Server() *toxiproxy.ApiServer { return l.server }

func loopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("link address %q: %w", hostport, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("link address %q is not a loopback address: the emulated link stays on this machine", hostport)
	}
	return nil
}

func (l *Link) addToxic(t toxicSpec) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
		return fmt.Errorf("adding toxic %s to the link: %w", t.Name, err)
	}
	return nil
}

// Addr is the host:port the proxy listens on.
func (l *Link) Addr() string {
	l.proxy.Lock()
	defer l.proxy.Unlock()
	return l.proxy.Listen
}

// Cut takes the link down: open connections are closed and new ones are
// refused, as when a VPN drops or a laptop loses its network.
func (l *Link) Cut() {
	l.proxy.Stop()
}

// Restore brings a cut link back up on the same address.
func (l *Link) Restore() error {
	if err := l.proxy.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
		return fmt.Errorf("restoring the link on %s: %w", l.Addr(), err)
	}
	return nil
}

// Blackhole makes the link swallow everything in both directions while
// connections stay open (Toxiproxy's timeout toxic with no timeout): a
// stalled link, as when a route dies without a reset. Heal undoes it.
func (l *Link) Blackhole() error {
	for _, stream := range []string{"upstream", "downstream"} {
		name := "fault_timeout_" + stream
		if err := l.addFault(toxicSpec{Name: name, Type: "timeout", Stream: stream, Toxicity: 1,
			Attributes: map[string]any{"timeout": 0}}); err != nil {
			return err
		}
	}
	return nil
}

// Throttle limits both directions to rate bytes per second, on top of the
// profile (the slower limit wins). Heal undoes it. Where the profile has a
// bandwidth toxic, its rate changes in place: a toxic added behind the
// latency toxic would let that one's buffer swallow what the throttle holds
// back (see toxics).
func (l *Link) Throttle(rate int64) error {
	for _, d := range []struct {
		stream string
		dir    Direction
	}{{"upstream", l.Profile.Up}, {"downstream", l.Profile.Down}} {
		if d.dir.Rate > 0 {
			if err := l.setRate(d.stream, min(rate, d.dir.Rate)); err != nil {
				return err
			}
			l.mu.Lock()
			l.throttled = true
			l.mu.Unlock()
			continue
		}
		t := bandwidthToxic(d.stream, rate)
		t.Name = "fault_" + t.Name
		if err := l.addFault(t); err != nil {
			return err
		}
	}
	return nil
}

// setRate changes the rate of the profile's bandwidth toxic on stream.
func (l *Link) setRate(stream string, rate int64) error {
	t := bandwidthToxic(stream, rate)
	b, err := json.Marshal(map[string]any{"attributes": t.Attributes, "toxicity": t.Toxicity})
	if err != nil {
		return err
	}
	if _, err := l.proxy.Toxics.UpdateToxicJson(t.Name, strings.NewReader(string(b))); err != nil {
		return fmt.Errorf("setting the rate of toxic %s: %w", t.Name, err)
	}
	return nil
}

func (l *Link) addFault(t toxicSpec) error {
	if err := l.addToxic(t); err != nil {
		return err
	}
	l.mu.Lock()
	l.faults = append(l.faults, t.Name)
	l.mu.Unlock()
	return nil
}

// Heal removes every fault added by Blackhole or Throttle and gives the
// profile's bandwidth back.
func (l *Link) Heal() error {
	l.mu.Lock()
	faults, throttled := l.faults, l.throttled
	l.faults, l.throttled = nil, false
	l.mu.Unlock()
	var errs []error
	for _, name := range faults {
		if err := l.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
			errs = append(errs, fmt.Errorf("removing toxic %s: %w", name, err))
		}
	}
	if throttled {
		for stream, rate := range map[string]int64{"upstream": l.Profile.Up.Rate, "downstream": l.Profile.Down.Rate} {
			if rate > 0 {
				if err := l.setRate(stream, rate); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Toxics lists the names of the toxics on the link, sorted.
func (l *Link) Toxics() []string {
	var names []string
	for _, t := range l.proxy.Toxics.GetToxicArray() {
		if w, ok := t.(*toxics.ToxicWrapper); ok {
			names = append(names, w.Name)
		}
	}
	sort.Strings(names)
	return names
}

// Close stops the proxy and closes its connections.
func (l *Link) Close() {
	_ = l.server.Collection.Clear()
}

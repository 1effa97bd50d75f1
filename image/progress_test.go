package image

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestSlowPullLogsPerLayerProgressAtInfo(t *testing.T) {
	reg := newTestRegistry(t)
	l := newLayer(t, uncompressed, file{name: "big", body: strings.Repeat("x", 256<<10)})
	ref := reg.push(t, "slow:1", imageOf(t, v1.Config{}, l))
	core, logs := observer.New(zap.InfoLevel)
	progressed := func() bool { return logs.FilterMessage("pull progress").Len() > 0 }
	// The registry sends half the layer and holds the rest back until the
	// pull has reported its progress.
	reg.fault(l.digest(), func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(l.blob)))
		w.Write(l.blob[:len(l.blob)/2])
		w.(http.Flusher).Flush()
		for deadline := time.Now().Add(30 * time.Second); !progressed() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		w.Write(l.blob[len(l.blob)/2:])
	})
	s, err := Open(context.Background(), Options{Root: t.TempDir(), Log: zap.New(core),
		Config: Config{ProgressIntervalSeconds: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	mustPull(t, s, ref)
	elapsed := time.Since(start)

	entries := logs.FilterMessage("pull progress").All()
	if len(entries) == 0 {
		t.Fatal("no progress was logged")
	}
	// At most one entry per interval: a log line per chunk read would
	// flood the log of a large pull. (An upper bound, never a wait.)
	if most := int(elapsed/time.Second) + 1; len(entries) > most {
		t.Errorf("%d progress entries in %v, want at most one per second (%d)", len(entries), elapsed, most)
	}
	for _, e := range entries {
		if e.Level != zap.InfoLevel {
			t.Errorf("progress logged at %v, want info", e.Level)
		}
	}
	f := entries[0].ContextMap()
	if f["image"] != ref || !strings.Contains(fmt.Sprint(f["layers"]), l.digest()[:19]) ||
		!strings.Contains(fmt.Sprint(f["layers"]), fmt.Sprintf("%d/%d", len(l.blob)/2, len(l.blob))) {
		t.Fatalf("progress entry %v: want the image and the layer's bytes so far", f)
	}
}

func TestDownloadsPerRegistryHostStayWithinTheLimit(t *testing.T) {
	const limit = 2
	reg := newTestRegistry(t)
	var layers []*memLayer
	for i := range 6 {
		layers = append(layers, newLayer(t, gzipped, file{name: fmt.Sprint(i), body: strings.Repeat("y", 1000+i)}))
	}
	ref := reg.push(t, "wide:1", imageOf(t, v1.Config{}, layers...))
	var mu sync.Mutex
	inflight, most := 0, 0
	for _, l := range layers {
		reg.fault(l.digest(), func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			inflight++
			most = max(most, inflight)
			mu.Unlock()
			// Hold the download until the limit is reached (or a while),
			// so that a pull ignoring the limit would exceed it.
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				mu.Lock()
				n := inflight
				mu.Unlock()
				if n >= limit {
					break
				}
			}
			// Counted out before answering: the client holds its slot
			// until it has read the answer, so this never over-counts.
			mu.Lock()
			inflight--
			mu.Unlock()
			w.Write(l.blob)
		})
	}
	s := openTestStore(t, Config{MaxConcurrentDownloads: limit})
	mustPull(t, s, ref)
	if most > limit {
		t.Fatalf("%d downloads ran at once from one host, limit %d", most, limit)
	}
	if most < limit {
		t.Fatalf("at most %d download at a time, want layers fetched in parallel up to the limit %d", most, limit)
	}
}

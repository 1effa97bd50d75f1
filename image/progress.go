package image

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap"
)

// layerProgress is one blob's download, for the progress log.
type layerProgress struct {
	digest   digest.Digest
	total    int64
	done     atomic.Int64
	finished atomic.Bool
}

func (l *layerProgress) finish() { l.finished.Store(true) }

func (p *pull) track(desc ocispec.Descriptor) *layerProgress {
	l := &layerProgress{digest: desc.Digest, total: desc.Size}
	p.mu.Lock()
	p.progress = append(p.progress, l)
	p.mu.Unlock()
	return l
}

func (p *pull) downloaded() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, l := range p.progress {
		n += l.done.Load()
	}
	return n
}

// reportProgress logs the bytes of every running download at info, once
// per progress interval, until stopped.
func (p *pull) reportProgress() func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Duration(p.s.cfg.ProgressIntervalSeconds) * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			p.mu.Lock()
			var layers []string
			var sum, total int64
			for _, l := range p.progress {
				n := l.done.Load()
				sum += n
				total += l.total
				if !l.finished.Load() {
					layers = append(layers, fmt.Sprintf("%.19s %d/%d", l.digest, n, l.total))
				}
			}
			p.mu.Unlock()
			if len(layers) > 0 {
				p.log.Info("pull progress", zap.Int64("bytes", sum), zap.Int64("total", total),
					zap.String("layers", strings.Join(layers, ", ")))
			}
		}
	}()
	return func() { close(done) }
}
